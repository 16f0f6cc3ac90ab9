"""Fitting a picture to a provider: exact shapes, the focus point, no metadata, byte limits."""

import io
import os

import pytest
from PIL import Image, ImageCms, JpegImagePlugin, PngImagePlugin

from studio.providers.images import (
    STABILITY_SIZES,
    PreparedImage,
    crop_box,
    fit_exact,
    fit_within,
    nearest_orientation,
)
from tests.conftest import make_image_bytes

RED, BLUE = (220, 30, 30), (30, 30, 220)
GPS_IFD, ORIENTATION, MAKE = 0x8825, 0x0112, 0x010F


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def halves(size, first=RED, second=BLUE, *, vertical_split=True) -> Image.Image:
    """Left half `first`, right half `second` (or top / bottom)."""
    w, h = size
    image = Image.new("RGB", size, second)
    image.paste(first, (0, 0, w // 2, h) if vertical_split else (0, 0, w, h // 2))
    return image


def opened(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    exif[ORIENTATION] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (52.0, 22.0, 7.5)
    gps[3] = "E"
    gps[4] = (4.0, 53.0, 2.1)
    return exif


# --- nearest_orientation and crop_box -----------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), "landscape"),
        ((1080, 1920), "portrait"),
        ((1000, 1000), "square"),
        ((4000, 500), "landscape"),
        ((500, 4000), "portrait"),
        ((1100, 1000), "square"),
        ((4000, 3000), "landscape"),  # 4:3 is exactly halfway: the tie goes to the first key
        ((3000, 4000), "portrait"),
    ],
)
def test_nearest_orientation(size, expected):
    assert nearest_orientation(*size) == expected


@pytest.mark.parametrize("size", [(1600, 1000), (1000, 1600), (800, 800), (4000, 500), (65, 3999)])
@pytest.mark.parametrize("target", list(STABILITY_SIZES.values()))
@pytest.mark.parametrize("focus", [(0.5, 0.5), (0, 0), (1, 1), (0.9, 0.1), (-3, 7)])
def test_crop_box_is_the_largest_box_of_the_target_aspect_inside_the_image(size, target, focus):
    width, height = size
    box = crop_box(width, height, *target, *focus)
    left, top, right, bottom = box
    assert all(isinstance(v, int) for v in box)
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    box_w, box_h = right - left, bottom - top
    if box_w == width:  # as large as it can be: one side is the image's whole side
        assert abs(box_h - width * target[1] / target[0]) <= 0.5 or box_h == height
    else:
        assert box_h == height and abs(box_w - height * target[0] / target[1]) <= 0.5


def test_crop_box_follows_the_focus_and_stays_inside():
    assert crop_box(2000, 1000, 768, 768, 0.5, 0.5) == (500, 0, 1500, 1000)
    assert crop_box(2000, 1000, 768, 768, 0.0, 0.5) == (0, 0, 1000, 1000)
    assert crop_box(2000, 1000, 768, 768, 0.7, 0.5) == (900, 0, 1900, 1000)
    assert crop_box(2000, 1000, 768, 768, 1.0, 0.0) == (1000, 0, 2000, 1000)
    assert crop_box(1000, 2000, 1024, 576, 0.5, 0.1) == (
        0,
        0,
        1000,
        563,
    )  # 562.5 rounds up, as in JS


# --- fit_exact ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1600, 1000), (1000, 1600), (900, 900), (4000, 500), (300, 2000)])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_fit_exact_gives_exactly_each_stability_size(size, fmt):
    source = io.BytesIO(make_image_bytes(fmt, size))
    for target in STABILITY_SIZES.values():
        prepared = fit_exact(source, target)
        assert (prepared.width, prepared.height) == target
        assert prepared.content_type == "image/png" and prepared.extension == "png"
        image = opened(prepared)
        assert image.format == "PNG" and image.size == target and image.mode == "RGB"
    assert not source.closed  # the caller's file stays theirs


def test_fit_exact_reads_a_path(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(make_image_bytes("JPEG", (1600, 1000)))
    prepared = fit_exact(path, STABILITY_SIZES[nearest_orientation(1600, 1000)])
    assert opened(prepared).size == (1024, 576)
    assert fit_exact(str(path), (768, 768)).width == 768


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_focus_point_moves_the_crop(fmt):
    source = encode(halves((2000, 500)), fmt)  # red left half, blue right half
    left = opened(fit_exact(io.BytesIO(source), (768, 768), focus=(0.0, 0.5)))
    right = opened(fit_exact(io.BytesIO(source), (768, 768), focus=(1.0, 0.5)))
    centre = opened(fit_exact(io.BytesIO(source), (768, 768)))
    for x in (5, 384, 762):
        assert near(left.getpixel((x, 384)), RED)
        assert near(right.getpixel((x, 384)), BLUE)
    assert near(centre.getpixel((5, 384)), RED) and near(centre.getpixel((762, 384)), BLUE)

    tall = encode(halves((500, 2000), vertical_split=False))  # red top, blue bottom
    top = opened(fit_exact(io.BytesIO(tall), (1024, 576), focus=(0.5, 0.05)))
    bottom = opened(fit_exact(io.BytesIO(tall), (1024, 576), focus=(0.5, 0.95)))
    assert near(top.getpixel((512, 570)), RED) and near(bottom.getpixel((512, 5)), BLUE)


def assert_no_metadata(prepared: PreparedImage):
    image = opened(prepared)
    assert not image.getexif(), dict(image.getexif())
    assert not image.getexif().get_ifd(GPS_IFD)
    assert "exif" not in image.info
    assert "icc_profile" not in image.info
    assert not set(image.info) - {"dpi", "jfif", "jfif_version", "jfif_unit", "jfif_density"}, (
        image.info
    )
    assert b"PhoneMaker" not in prepared.data and b"Holiday" not in prepared.data


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_and_gps_and_profiles_and_text_do_not_leave(fmt):
    picture = Image.open(io.BytesIO(make_image_bytes("PNG", (1600, 1000)))).convert("RGB")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    params = {"exif": exif_with_gps().tobytes(), "icc_profile": srgb}
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", "Holiday at home")
        params["pnginfo"] = text
    source = encode(picture, fmt, **params)
    check = Image.open(io.BytesIO(source))
    assert check.getexif().get_ifd(GPS_IFD)[1] == "N" and check.info.get("icc_profile")

    png = fit_exact(io.BytesIO(source), (1024, 576))
    assert_no_metadata(png)
    assert_no_metadata(fit_within(io.BytesIO(source), 512))
    assert_no_metadata(fit_within(io.BytesIO(source), 512, fmt="PNG"))
    # Over the limit as PNG, it falls back to JPEG: that path must be clean too.
    jpeg = fit_exact(io.BytesIO(source), (1024, 576), max_bytes=len(png.data) - 1)
    assert jpeg.content_type == "image/jpeg"
    assert_no_metadata(jpeg)


def test_an_exif_rotated_phone_photo_is_turned_upright():
    # Stored as 1600×900 with red on the left; orientation 6 = "rotate 90° clockwise to view",
    # so the viewer sees a 900×1600 portrait with red on top.
    stored = halves((1600, 900))
    source = encode(stored, "JPEG", exif=exif_with_gps(orientation=6).tobytes(), quality=95)

    upright = opened(fit_exact(io.BytesIO(source), STABILITY_SIZES["portrait"]))
    assert upright.size == (576, 1024)
    assert near(upright.getpixel((288, 50)), RED) and near(upright.getpixel((288, 970)), BLUE)

    small = opened(fit_within(io.BytesIO(source), 512))
    assert small.size == (288, 512)
    assert near(small.getpixel((144, 20)), RED) and near(small.getpixel((144, 490)), BLUE)
    assert not small.getexif()  # no orientation tag left to turn it a second time


def test_a_png_over_the_limit_falls_back_to_jpeg_under_it():
    noise = Image.frombytes("RGB", (1024, 576), os.urandom(1024 * 576 * 3))  # incompressible
    source = encode(noise)
    assert len(fit_exact(io.BytesIO(source), (1024, 576)).data) > 1_000_000  # PNG: ~1.8 MB

    prepared = fit_exact(io.BytesIO(source), (1024, 576), max_bytes=1_000_000)
    assert prepared.content_type == "image/jpeg" and prepared.extension == "jpg"
    assert len(prepared.data) <= 1_000_000
    image = opened(prepared)
    assert image.format == "JPEG" and image.size == (1024, 576)

    tighter = fit_exact(io.BytesIO(source), (1024, 576), max_bytes=400_000)  # below quality 92
    assert tighter.content_type == "image/jpeg" and len(tighter.data) <= 400_000

    with pytest.raises(ValueError, match="50,000 bytes"):
        fit_exact(io.BytesIO(source), (1024, 576), max_bytes=50_000)


def test_what_is_not_an_image_is_a_value_error():
    with pytest.raises(ValueError, match="could not be read"):
        fit_exact(io.BytesIO(b"not a picture at all"), (768, 768))
    truncated = make_image_bytes("JPEG", (1600, 1000))[:2000]
    with pytest.raises(ValueError, match="could not be decoded"):
        fit_within(io.BytesIO(truncated), 512)


def test_transparency_is_flattened_on_white():
    image = Image.new("RGBA", (800, 800), (0, 0, 0, 0))
    image.paste((20, 200, 20, 255), (0, 0, 400, 800))
    out = opened(fit_exact(io.BytesIO(encode(image)), (768, 768)))
    assert out.mode == "RGB"
    assert near(out.getpixel((700, 384)), (255, 255, 255), 2)
    assert near(out.getpixel((50, 384)), (20, 200, 20), 2)


# --- fit_within ---------------------------------------------------------------------------------
def test_fit_within_shrinks_a_big_photo_to_512():
    prepared = fit_within(io.BytesIO(make_image_bytes("JPEG", (4000, 3000))), 512)
    assert (prepared.width, prepared.height) == (512, 384)
    assert prepared.content_type == "image/jpeg" and prepared.extension == "jpg"
    image = opened(prepared)
    assert image.format == "JPEG" and image.size == (512, 384) and image.mode == "RGB"


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((300, 200), 512, (300, 200)),  # never upscaled
        ((512, 100), 512, (512, 100)),
        ((4000, 3000), 512, (512, 384)),
        ((3000, 4000), 512, (384, 512)),
        ((4000, 500), 512, (512, 64)),
        ((1000, 1000), 480, (480, 480)),
        ((1601, 999), 1000, (1000, 624)),
    ],
)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_fit_within_keeps_the_aspect_and_never_upscales(size, max_side, expected, fmt):
    prepared = fit_within(io.BytesIO(make_image_bytes(fmt, size)), max_side, fmt=fmt)
    assert (prepared.width, prepared.height) == expected
    assert opened(prepared).size == expected
    assert max(expected) <= max_side
    assert abs(expected[0] / expected[1] - size[0] / size[1]) < 0.02 * size[0] / size[1]
    assert prepared.content_type == ("image/png" if fmt == "PNG" else "image/jpeg")


def test_fit_within_refuses_what_it_cannot_do():
    source = make_image_bytes("PNG", (640, 400))
    with pytest.raises(ValueError, match="only JPEG and PNG"):
        fit_within(io.BytesIO(source), 512, fmt="GIF")
    with pytest.raises(ValueError, match="200 bytes"):
        fit_within(io.BytesIO(source), 512, max_bytes=200)


def test_a_big_jpeg_is_decoded_at_reduced_scale(monkeypatch):
    """draft() is asked for at least twice the size needed, and only for a JPEG."""
    calls = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append((self.format, self.size, size))
        return real_draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fit_within(io.BytesIO(make_image_bytes("JPEG", (4000, 3000))), 512)
    assert calls == [("JPEG", (4000, 3000), (1024, 768))]
    calls.clear()
    fit_within(io.BytesIO(make_image_bytes("PNG", (4000, 3000))), 512)
    fit_exact(io.BytesIO(make_image_bytes("JPEG", (1200, 900))), (1024, 576))
    assert calls == []
