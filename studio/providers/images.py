"""Fitting a member's picture to what a provider accepts, before it is sent.

Pure functions on Pillow: no models, no HTTP. Every result is re-encoded from pixels only, so
nothing of the original file travels with it: no EXIF (camera, GPS position, time), no text
chunks, no colour profile (pixels are converted to sRGB first, so colours survive the loss).

Decoding is bounded: uploads are checked for size and pixel count before they are stored
(studio/uploads.py), files are opened lazily, and a JPEG much larger than the result is decoded
at a reduced scale (`draft`), which makes a 12 MP phone photo several times cheaper.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from typing import IO

from PIL import Image, ImageCms, ImageOps

from studio.engine.source import oriented_size, to_rgb

# Stability's image-to-video takes exactly one of these shapes (providers.md §1).
STABILITY_SIZES = {"landscape": (1024, 576), "portrait": (576, 1024), "square": (768, 768)}

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# Fallback JPEG qualities, best first, when a PNG (or the first JPEG) is over the byte limit.
_JPEG_LADDER = (92, 85, 75)
_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}
# A JPEG is decoded at reduced scale only down to this multiple of the size actually needed.
_DRAFT_MARGIN = 2
# Log-ratio distances closer than this are a tie (see nearest_orientation).
_TIE = 1e-9

Source = str | os.PathLike | IO[bytes] | bytes


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.content_type]


def nearest_orientation(width: int, height: int) -> str:
    """The key of STABILITY_SIZES whose aspect ratio is nearest the image's (by log-ratio).

    4:3 lies exactly halfway between 16:9 and 1:1, so ties are decided by the order of
    STABILITY_SIZES (4:3 → landscape, 3:4 → portrait) rather than by the last bit of a
    logarithm; static/studio/crop.js makes the same choice.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"an image of {width}×{height} has no orientation")
    aspect = math.log(width / height)
    best, best_distance = "", math.inf
    for key, size in STABILITY_SIZES.items():
        distance = abs(math.log(size[0] / size[1]) - aspect)
        if distance < best_distance - _TIE:  # a tie keeps the earlier key
            best, best_distance = key, distance
    return best


def crop_box(
    width: int, height: int, target_w: int, target_h: int, focus_x: float, focus_y: float
) -> tuple[int, int, int, int]:
    """The largest box of aspect target_w:target_h inside width×height, centred on the focus.

    The focus is given in fractions (0..1) of the width and height; the box is shifted to stay
    inside the image. Returns (left, top, right, bottom) in whole pixels. static/studio/crop.js
    draws the same box in the browser: keep the two in step.
    """
    if min(width, height, target_w, target_h) <= 0:
        raise ValueError(f"cannot crop {width}×{height} to {target_w}×{target_h}")
    if width * target_h > height * target_w:  # the image is wider than the target
        box_h = height
        box_w = min(width, max(1, _round(height * target_w / target_h)))
    else:
        box_w = width
        box_h = min(height, max(1, _round(width * target_h / target_w)))
    left = _clamp(_round(_fraction(focus_x) * width - box_w / 2), 0, width - box_w)
    top = _clamp(_round(_fraction(focus_y) * height - box_h / 2), 0, height - box_h)
    return (left, top, left + box_w, top + box_h)


def fit_exact(
    source: Source,
    size: tuple[int, int],
    *,
    focus: tuple[float, float] = (0.5, 0.5),
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> PreparedImage:
    """Crop around `focus` to the aspect of `size`, resize to exactly `size`, encode.

    PNG when it fits in `max_bytes`, otherwise the best JPEG quality that does; ValueError when
    none does (or the file cannot be decoded).
    """
    target_w, target_h = size
    if target_w <= 0 or target_h <= 0:
        raise ValueError(f"cannot fit an image to {target_w}×{target_h}")
    with _open(source) as image:
        width, height = oriented_size(image, True)
        left, _, right, _ = crop_box(width, height, target_w, target_h, *focus)
        _draft(image, target_w / (right - left))
        picture = _decode(image)
        box = crop_box(*picture.size, target_w, target_h, *focus)
        out = picture.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    return _encode(out, ["PNG", *_JPEG_LADDER], max_bytes)


def fit_within(
    source: Source,
    max_side: int,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    fmt: str = "JPEG",
) -> PreparedImage:
    """Scale down (never up), keeping the aspect, so that neither side exceeds `max_side`.

    JPEG at quality 90 by default, or PNG; falls back to lower JPEG qualities when over
    `max_bytes`, and raises ValueError when even the lowest is.
    """
    fmt = fmt.upper()
    if fmt not in _CONTENT_TYPES:
        raise ValueError(f"cannot encode {fmt}: only JPEG and PNG")
    if max_side <= 0:
        raise ValueError(f"cannot fit an image within {max_side} pixels")
    with _open(source) as image:
        width, height = oriented_size(image, True)
        scale = min(1.0, max_side / width, max_side / height)
        _draft(image, scale)
        picture = _decode(image)
        target = (
            _clamp(_round(width * scale), 1, max_side),
            _clamp(_round(height * scale), 1, max_side),
        )
        if picture.size != target:
            picture = picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        else:
            picture = picture.copy()  # never the still-open file's own image
    ladder = ["PNG", *_JPEG_LADDER] if fmt == "PNG" else [90, *_JPEG_LADDER[1:]]
    return _encode(picture, ladder, max_bytes)


# --- Helpers ----------------------------------------------------------------------------------
def _round(value: float) -> int:
    """Half up, like JavaScript's Math.round, so the browser preview draws the same box."""
    return math.floor(value + 0.5)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _fraction(value: float) -> float:
    value = float(value)
    return min(1.0, max(0.0, value)) if math.isfinite(value) else 0.5


def _open(source: Source) -> Image.Image:
    """Open lazily (header only). A file-like object is left open for its owner to close."""
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    try:
        return Image.open(source)
    except FileNotFoundError:
        raise
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the image could not be read: {exc}") from exc


def _draft(image: Image.Image, scale: float) -> None:
    """Let a JPEG decode at a reduced scale when the result is much smaller than the file."""
    if image.format in ("JPEG", "MPO") and scale * _DRAFT_MARGIN < 1:
        want = (
            max(1, math.ceil(image.size[0] * scale * _DRAFT_MARGIN)),
            max(1, math.ceil(image.size[1] * scale * _DRAFT_MARGIN)),
        )
        image.draft("RGB", want)


def _decode(image: Image.Image) -> Image.Image:
    """Decode, turn upright as the EXIF orientation says, convert to sRGB and to plain RGB."""
    try:
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the image could not be decoded: {exc}") from exc
    try:
        picture = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block is not worth refusing the picture over
        picture = image.copy()
    return to_rgb(_to_srgb(picture))


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert the pixels from an embedded colour profile (e.g. a phone's Display P3) to sRGB."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), 0, mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # an unreadable or mismatched profile: keep the pixels as they are


def _encode(image: Image.Image, ladder: list[str | int], max_bytes: int) -> PreparedImage:
    """Encode with the first step of the ladder ("PNG" or a JPEG quality) that fits max_bytes."""
    image.info = {}  # Pillow falls back to info for some chunks (PNG writes its ICC profile)
    smallest = None
    for step in ladder:
        buffer = io.BytesIO()
        if step == "PNG":
            image.save(buffer, "PNG", optimize=False, compress_level=6)
        else:
            image.save(buffer, "JPEG", quality=step, optimize=True, subsampling="4:2:0")
        data = buffer.getvalue()
        if len(data) <= max_bytes:
            fmt = "PNG" if step == "PNG" else "JPEG"
            return PreparedImage(data, _CONTENT_TYPES[fmt], image.width, image.height)
        smallest = len(data) if smallest is None else min(smallest, len(data))
    raise ValueError(
        f"the {image.width}×{image.height} image cannot be encoded within {max_bytes:,} bytes "
        f"(the smallest attempt was {smallest:,} bytes)"
    )
