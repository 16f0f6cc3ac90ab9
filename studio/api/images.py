"""Images uploaded once and used by several jobs (`image_id` on job creation)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import Http404
from ninja import Router, Schema, Status

from studio.api.auth import writer
from studio.api.bodies import FILE, URL, body, fields
from studio.api.errors import answers
from studio.api.job_requests import BadRequest, read_json
from studio.models import ImageUpload
from studio.uploads import UploadRefused, check_image

router = Router(tags=["images"])


class ImageOut(Schema):
    id: UUID
    width: int
    height: int
    size: int
    source_url: str
    created_at: datetime


UPLOAD_BODY = body(
    multipart=fields({"image": FILE}, required=["image"]),
    json=fields({"url": URL}, required=["url"]),
)


@router.post(
    "",
    response=answers(201, ImageOut),
    summary="Upload an image (a file, or a URL we fetch) to start jobs from by its id",
    openapi_extra={"requestBody": UPLOAD_BODY},
)
def upload_image(request):
    caller = writer(request)
    source_url = ""
    if request.content_type == "application/json":
        source_url = read_json(request).get("url")
        if not isinstance(source_url, str) or not source_url:
            raise BadRequest(422, "invalid", "Send the image's address in url.", "url")
        data, content_type = fetch_image(source_url)
        image = SimpleUploadedFile("image", data, content_type)
    elif request.content_type == "multipart/form-data":
        image = request.FILES.get("image")
        if image is None:
            raise BadRequest(422, "invalid", "Send the image file in the field image.", "image")
    else:
        raise BadRequest(415, "unsupported_media_type", "Send multipart/form-data or JSON.")
    try:
        checked = check_image(image)
    except UploadRefused as refusal:
        raise BadRequest(422, "invalid", str(refusal), "image") from None
    upload = ImageUpload(
        team=caller.team,
        user=caller.membership.user,
        width=checked.width,
        height=checked.height,
        size=image.size,
        source_url=source_url,
    )
    upload.file.save(checked.storage_name(), image, save=True)
    return Status(201, upload)


@router.get("/{image_id}", response=answers(200, ImageOut), summary="One uploaded image")
def get_image(request, image_id: UUID):
    upload = ImageUpload.objects.filter(team=request.caller.team, pk=image_id).first()
    if upload is None:
        raise Http404("No such image")
    return upload


def fetch_image(url: str) -> tuple[bytes, str]:
    """An image_url's bytes, fetched with SSRF protection within the upload limits."""
    from studio.public_urls import fetch

    fetched = fetch(
        url, max_bytes=settings.MAX_UPLOAD_BYTES, timeout=settings.API_IMAGE_FETCH_TIMEOUT
    )
    return fetched.data, fetched.content_type
