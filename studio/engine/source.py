"""Turning the input picture into the working image the camera moves over."""

from __future__ import annotations

import math
import os
from pathlib import Path

from PIL import Image, ImageOps

# Transparent pixels are laid over this colour.
BACKGROUND = (255, 255, 255)

_ORIENTATION_TAG = 0x0112
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def open_picture(image: Image.Image | str | os.PathLike) -> tuple[Image.Image, bool]:
    """Open a path lazily (or take a PIL image); also say whether EXIF orientation applies.

    Orientation is applied to files we open and to images straight out of
    `Image.open` (they still have a `format`); an image the caller has already
    processed is taken as it is.
    """
    if isinstance(image, Image.Image):
        return image, image.format is not None
    path = Path(image)
    try:
        return Image.open(path), True
    except FileNotFoundError:
        raise
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image {path} could not be read: {exc}") from exc


def oriented_size(img: Image.Image, apply_orientation: bool) -> tuple[int, int]:
    """The picture's (width, height) as it will be shown, without decoding it."""
    width, height = img.size
    if apply_orientation:
        try:
            orientation = img.getexif().get(_ORIENTATION_TAG)
        except Exception:  # a broken EXIF block is not worth failing a render over
            orientation = None
        if orientation in _ROTATED_ORIENTATIONS:
            return height, width
    return width, height


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit / integer / float greyscale to "L"."""
    sixteen_bit = img.mode.startswith("I;16")
    if sixteen_bit:
        img = img.convert("I")
    _, high = img.getextrema()
    if sixteen_bit:
        img = img.point(lambda v: v * (1 / 257))
    elif high > 255:
        img = img.point(lambda v: v * (255 / high))
    return img.convert("L")


def to_rgb(img: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """Any Pillow mode (RGBA, P, L, LA, CMYK, I;16, ...) to RGB; alpha over `background`."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _to_8bit(img)
    has_alpha = img.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
    if not has_alpha:
        return img.convert("RGB")
    rgba = img.convert("RGBA")
    flat = Image.new("RGB", rgba.size, background)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def centre_crop(size: tuple[int, int], ratio: float) -> tuple[float, float, float, float]:
    """The largest centred box of aspect `ratio` (width / height) inside `size`."""
    width, height = size
    if width / height > ratio:
        crop_w, crop_h = height * ratio, float(height)
    else:
        crop_w, crop_h = float(width), width / ratio
    x = (width - crop_w) / 2
    y = (height - crop_h) / 2
    return (x, y, x + crop_w, y + crop_h)


def working_image(
    img: Image.Image,
    work_size: tuple[int, int],
    ratio: float,
    *,
    apply_orientation: bool,
    allow_draft: bool,
) -> Image.Image:
    """Decode, orient, flatten to RGB, centre-crop to `ratio` and scale to `work_size`.

    With `allow_draft` (only for files we opened ourselves: it changes the image
    object), JPEGs are decoded at a reduced scale when the working image is much
    smaller than the file, which saves most of the decode time.
    """
    x0, _, x1, _ = centre_crop(oriented_size(img, apply_orientation), ratio)
    scale = work_size[0] / (x1 - x0)
    if allow_draft and scale < 1 and img.format == "JPEG":
        # The same uniform scale in the file's own orientation.
        want = (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale))
        img.draft(img.mode, want)
    try:
        img.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image could not be decoded: {exc}") from exc
    if apply_orientation:
        img = ImageOps.exif_transpose(img)
    img = to_rgb(img)
    box = centre_crop(img.size, ratio)
    return img.resize(work_size, Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
