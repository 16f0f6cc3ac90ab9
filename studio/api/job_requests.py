"""Reading a job-creation request: JSON (`image_url` or `image_id`) or multipart (the image file,
and the files a model takes beside it, under the same names as the new-job form)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.http import Http404

from studio.api.idempotency import request_digest
from studio.jobs.submit import JobRefused, StoredImage
from studio.models import ImageUpload, Team

IMAGE_FIELDS = ("image", "image_id", "image_url")
PLAIN_FIELDS = ("provider", "image_id", "image_url")


class BadRequest(ValueError):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass
class JobRequest:
    provider: str
    params: dict  # the model's parameters, with "model"
    image_file: UploadedFile | None = None
    image_id: str = ""
    image_url: str = ""
    files: dict = field(default_factory=dict)  # beside the image: end frame, masks, audio
    digest: str = ""


def read(request) -> JobRequest:
    if request.content_type == "application/json":
        return _from_json(request)
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return _from_form(request)
    raise BadRequest(415, "unsupported_media_type", "Send application/json or multipart/form-data.")


def _text(value, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(422, "invalid", f"{name} must be a string.", name)
    return value


def read_json(request) -> dict:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, RecursionError):  # also a number too long to read (over 4,300 digits)
        raise BadRequest(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest(422, "invalid", "The body must be a JSON object.")
    return body


def _from_json(request) -> JobRequest:
    body = read_json(request)
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest(422, "invalid", "params must be an object.", "params")
    wanted = JobRequest(
        provider=_text(body.get("provider"), "provider"),
        params={**params, "model": _text(body.get("model"), "model")},
        image_id=_text(body.get("image_id"), "image_id"),
        image_url=_text(body.get("image_url"), "image_url"),
    )
    wanted.digest = request_digest(request.method, request.path, body, {})
    return wanted


def _from_form(request) -> JobRequest:
    files = {}
    for name in request.FILES:
        upload = request.FILES[name]
        files[name] = upload
    wanted = JobRequest(
        provider=request.POST.get("provider", ""),
        params={k: v for k, v in request.POST.items() if k not in PLAIN_FIELDS},
        image_file=files.pop("image", None),
        image_id=request.POST.get("image_id", ""),
        image_url=request.POST.get("image_url", ""),
        files=files,
    )
    contents = {name: file_bytes(upload) for name, upload in request.FILES.items()}
    fields = sorted((k, request.POST.getlist(k)) for k in request.POST)
    wanted.digest = request_digest(request.method, request.path, fields, contents)
    return wanted


def file_bytes(upload: UploadedFile) -> bytes:
    upload.seek(0)
    data = upload.read()
    upload.seek(0)
    return data


def image_of(wanted: JobRequest, team: Team, fetch) -> UploadedFile | StoredImage:
    """The one image the request names; `fetch(url)` brings an image_url's bytes."""
    given = [
        name
        for name, value in zip(
            IMAGE_FIELDS, (wanted.image_file, wanted.image_id, wanted.image_url), strict=True
        )
        if value
    ]
    if len(given) != 1:
        raise JobRefused({"image": ["Send exactly one of: an image file, image_id or image_url."]})
    if wanted.image_file is not None:
        return wanted.image_file
    if wanted.image_id:
        return stored_upload(team, wanted.image_id)
    data, content_type = fetch(wanted.image_url)
    return SimpleUploadedFile("image", data, content_type)


def stored_upload(team: Team, image_id: str) -> StoredImage:
    try:
        upload = ImageUpload.objects.filter(team=team, pk=image_id).first()
    except ValidationError:  # not a UUID: no such image either
        upload = None
    if upload is None:
        raise Http404("No such image")
    return StoredImage(upload.file.name, upload.width, upload.height)
