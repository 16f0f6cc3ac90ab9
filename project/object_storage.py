"""Media on an S3-compatible object store (django-storages), as settings.py configures it from the
S3_* variables. Kept apart so the tests configure their S3 server exactly as production does.

Nothing here imports boto3: settings load on every command, and only a process that touches a
stored file needs the client.
"""

from __future__ import annotations

from urllib.parse import urlsplit

S3_BACKEND = "storages.backends.s3.S3Storage"
ADDRESSING_STYLES = ("auto", "path", "virtual")
# SigV4 presigned URLs live at most seven days.
MAX_PRESIGNED_TTL = 7 * 24 * 3600
# An opened stored file (a provider output being checked, an input sent to a provider) is
# buffered in memory up to this size, on local disk beyond it; django-storages' default (0)
# would keep a whole video in memory.
MAX_MEMORY_SIZE = 2_621_440


def s3_storage(
    *,
    bucket: str,
    endpoint_url: str = "",
    region: str = "",
    access_key_id: str = "",
    secret_access_key: str = "",
    addressing_style: str = "auto",
    presigned_ttl: int = 300,
) -> dict:
    """STORAGES["default"] for a private bucket: no ACL is ever sent (objects keep the bucket's
    private default), every URL is presigned and short-lived, names are never overwritten (as on
    local disk, an existing name gets a suffix). Empty credentials leave them to boto3's own chain
    (AWS_* variables, an instance or task role)."""
    return {
        "BACKEND": S3_BACKEND,
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            "access_key": access_key_id or None,
            "secret_key": secret_access_key or None,
            "addressing_style": None if addressing_style == "auto" else addressing_style,
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": presigned_ttl,
            "file_overwrite": False,
            "max_memory_size": MAX_MEMORY_SIZE,
        },
    }


def media_origins(
    *, bucket: str, endpoint_url: str = "", region: str = "", addressing_style: str = "auto"
) -> list[str]:
    """The origins presigned URLs point at, for the Content-Security-Policy's img-src and
    media-src: the player and the poster follow our redirect there. botocore builds the URL the
    same way (tests/test_object_storage.py compares the two)."""
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        if addressing_style == "virtual":
            return [f"{parts.scheme}://{bucket}.{parts.netloc}"]
        return [f"{parts.scheme}://{parts.netloc}"]
    if addressing_style == "path":
        host = f"s3.{region}.amazonaws.com" if region else "s3.amazonaws.com"
        return [f"https://{host}"]
    # Amazon's global name, and the regional one a young bucket may be redirected to.
    origins = [f"https://{bucket}.s3.amazonaws.com"]
    if region:
        origins.append(f"https://{bucket}.s3.{region}.amazonaws.com")
    return origins
