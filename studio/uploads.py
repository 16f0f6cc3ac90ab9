"""Checking an uploaded image before anything is stored.

The checks run from cheapest to most expensive, and the pixel count is read from the header
before any decoding, so a small file that would inflate into a huge bitmap is refused unread.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, UnidentifiedImageError

from studio.engine.source import oriented_size

# MPO is a JPEG with extra pictures appended (many phone cameras); its first picture is the photo.
ALLOWED_FORMATS = {"PNG": "png", "JPEG": "jpg", "MPO": "jpg", "WEBP": "webp"}
MIN_SIDE = 64
DECODE_BLOCK_BYTES = 1024 * 1024


class UploadRefused(ValueError):
    """The image cannot be used; the message says why, in words the uploader can act on."""


@dataclass(frozen=True)
class CheckedImage:
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return ALLOWED_FORMATS[self.format]

    def storage_name(self) -> str:
        # Never the uploader's file name: it may be anything, including a path.
        return f"{uuid.uuid4().hex}.{self.extension}"


def _megabytes(size: int, places: int = 1) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.{max(0, places - 1)}f} KB"
    return f"{size / 1024 / 1024:.{places}f} MB"


def size_over_limit(size: int, limit: int) -> str:
    """ "X; the limit is Y" with enough digits that X and Y differ (never "20.0 MB; the limit
    is 20.0 MB"), in bytes if it comes to that."""
    for places in (1, 2, 3):
        shown, allowed = _megabytes(size, places), _megabytes(limit, places)
        if shown != allowed:
            return f"{shown}; the limit is {allowed}"
    return f"{size:,} bytes; the limit is {limit:,} bytes"


# Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD_BYTES = 64 * 1024


def check_request_size(content_length: str | None) -> None:
    """Refuse an oversized upload from its Content-Length, before Django spools it to disk."""
    try:
        size = int(content_length or 0)
    except ValueError:
        return
    limit = settings.MAX_UPLOAD_BYTES
    if size > limit + FORM_OVERHEAD_BYTES:
        raise UploadRefused(f"The upload is {size_over_limit(size, limit)}.")


def check_image(upload: UploadedFile) -> CheckedImage:
    """The upload's format and upright size; UploadRefused unless it is an image we accept that
    decodes completely."""
    checked, confirm_decoded = check_image_header(upload)
    confirm_decoded()
    return checked


def _decoded_already() -> None:
    pass


def check_image_header(upload: UploadedFile) -> tuple[CheckedImage, Callable[[], None]]:
    """check_image() in two steps, for a caller with work to do while the image decodes: what
    the header says (refused now if its size, format or pixels are wrong), and a call that waits
    for the decode and raises UploadRefused if the file is damaged."""
    limit = settings.MAX_UPLOAD_BYTES
    if upload.size == 0:
        raise UploadRefused("The image file is empty.")
    if upload.size > limit:
        raise UploadRefused(f"The image is {size_over_limit(upload.size, limit)}.")
    # A form's or the API's upload is decoding since it arrived (studio.arriving_images).
    arriving = getattr(upload, "arriving_check", None)
    if arriving is not None:
        return arriving.header(), arriving.confirm_decoded
    upload.seek(0)
    try:
        return inspect_image(upload), _decoded_already
    finally:
        upload.seek(0)


def inspect_image(source, on_header: Callable[[CheckedImage], None] | None = None) -> CheckedImage:
    """The image's format and upright size, refused unless it decodes completely: the header
    first (format, pixel count), so a small file that would inflate into a huge bitmap is
    refused unread, then every byte. `on_header` hears the header's answer before the decode."""
    try:
        with Image.open(source) as image:  # reads the header only
            fmt, (width, height) = image.format, image.size
            if fmt not in ALLOWED_FORMATS:
                raise UploadRefused(
                    f"This is a {fmt} file; only PNG, JPEG and WebP images are accepted."
                )
            _check_dimensions(width, height)
            # The size as shown: a phone photo stored sideways is upright to the member, and
            # every provider crops and shapes it upright.
            shown = oriented_size(image, apply_orientation=True)
            checked = CheckedImage(format=fmt, width=shown[0], height=shown[1])
            if on_header is not None:
                on_header(checked)
            if fmt in ("JPEG", "MPO"):
                # Decode at 1/8 scale: libjpeg still reads every byte of the picture (so a
                # truncated or corrupt file fails just the same) but skips most of the work —
                # a 12-megapixel phone photo costs 40 % of a full decode.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            # Big blocks: the decoder lets go of the GIL for each, and takes it back between
            # them; a form's upload decodes in a thread beside the request (arriving_images).
            image.decodermaxblock = DECODE_BLOCK_BYTES
            image.load()  # now decoding is safe: a truncated or corrupt file fails here
    except UnidentifiedImageError:
        raise UploadRefused(
            "This file is not an image we can read; only PNG, JPEG and WebP images are accepted."
        ) from None
    except Image.DecompressionBombError:
        raise UploadRefused(_too_many_pixels_message(0, 0)) from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, UploadRefused):
            raise
        raise UploadRefused(
            f"The image is damaged or incomplete and cannot be decoded ({error})."
        ) from None
    return checked


def _too_many_pixels_message(width: int, height: int) -> str:
    limit = f"the limit is {settings.MAX_UPLOAD_PIXELS / 1e6:g} megapixels"
    if not width:  # Pillow's own guard fired first: far beyond our limit
        return f"The image has far too many pixels; {limit}."
    return f"The image is {width}×{height} ({width * height / 1e6:.1f} megapixels); {limit}."


def _check_dimensions(width: int, height: int) -> None:
    if width * height > settings.MAX_UPLOAD_PIXELS:
        raise UploadRefused(_too_many_pixels_message(width, height))
    if min(width, height) < MIN_SIDE:
        raise UploadRefused(
            f"The image is {width}×{height}; each side must be at least {MIN_SIDE} pixels."
        )
