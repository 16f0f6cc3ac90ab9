"""Where stored files live, and so how a member's browser is given one (studio.media): the one
place that tells the storage kinds apart.

- Object storage (S3 API, settings.S3_BUCKET): a redirect to a short-lived presigned URL; the
  object store answers Range itself, and no video byte passes through our web workers.
- Local disk behind nginx (settings.MEDIA_ACCEL_REDIRECT): an empty response whose
  `X-Accel-Redirect` names the file under nginx's internal location; nginx sends it, Range too.
- Local disk otherwise (the embedded default): Django streams the file, with Range support.

Everything else reaches files through Django's storage API only (open, save, size, delete), so
nothing depends on where they are.
"""

from __future__ import annotations

import sys
from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import FileSystemStorage

PRESIGNED = "presigned"
ACCEL_REDIRECT = "accel-redirect"
STREAM = "stream"


def is_object_storage(storage) -> bool:
    # django-storages (and boto3 with it) is imported only when settings chose S3: a storage
    # cannot be an S3Storage if its module was never loaded.
    module = sys.modules.get("storages.backends.s3")
    return module is not None and isinstance(storage, module.S3Storage)


def delivery(storage) -> str:
    """How a member's browser gets a file kept in `storage`."""
    if is_object_storage(storage):
        return PRESIGNED
    if settings.MEDIA_ACCEL_REDIRECT and isinstance(storage, FileSystemStorage):
        return ACCEL_REDIRECT
    return STREAM


def presigned_url(storage, name: str, *, content_type: str, disposition: str = "") -> str:
    """A GET URL for the object that lives S3_PRESIGNED_TTL seconds; the object store answers
    with our content type and, for a download, our Content-Disposition."""
    parameters = {"ResponseContentType": content_type}
    if disposition:
        parameters["ResponseContentDisposition"] = disposition
    return storage.url(name, parameters=parameters)


def accel_redirect_path(name: str) -> str:
    """The internal URI nginx serves `name` from (names are ours: folders, hex ids, dates)."""
    return settings.MEDIA_ACCEL_REDIRECT + quote(name)
