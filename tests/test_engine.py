"""The local engine makes real, browser-playable H.264 MP4s: checked by decoding with PyAV."""

import math
import struct
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from studio.engine import (
    ASPECTS,
    MOTIONS,
    RESOLUTIONS,
    RenderResult,
    RenderSettings,
    RenderStopped,
    output_size,
    render_video,
)
from studio.engine.motion import camera_path, max_zoom
from studio.engine.source import to_rgb

FAST = {"duration": 1, "resolution": "480p", "fps": 8}


def picture(size=(600, 400)) -> Image.Image:
    """Gradient plus shapes, so every kind of camera move changes the frame."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.3, h * 0.3, w * 0.6, h * 0.8), fill=(220, 60, 40))
    draw.rectangle((w * 0.65, h * 0.1, w * 0.9, h * 0.4), fill=(40, 90, 220))
    draw.line((0, h * 0.5, w, h * 0.2), fill=(250, 250, 0), width=5)
    return image


def top_level_atoms(path: Path) -> list[str]:
    names = []
    with path.open("rb") as f:
        while header := f.read(8):
            size, kind = struct.unpack(">I4s", header)
            names.append(kind.decode("latin-1"))
            if size == 1:  # 64-bit size follows
                size = struct.unpack(">Q", f.read(8))[0] - 8
            elif size == 0:  # runs to the end of the file
                break
            f.seek(size - 8, 1)
    return names


def probe(path: Path) -> dict:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_image() for frame in container.decode(stream)]
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "stream_duration": float(stream.duration * stream.time_base),
            "container_duration": container.duration / av.time_base,
            "rate": stream.average_rate,
            "colorspace": stream.codec_context.colorspace,
            "frames": frames,
        }


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


# --- Sizes ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image_size", "resolution", "aspect", "expected"),
    [
        ((3000, 2000), "720p", "source", (1080, 720)),
        ((3000, 2000), "720p", "16:9", (1280, 720)),
        ((3000, 2000), "720p", "9:16", (720, 1280)),
        ((3000, 2000), "720p", "1:1", (720, 720)),
        ((3000, 2000), "480p", "16:9", (854, 480)),
        ((3000, 2000), "1080p", "16:9", (1920, 1080)),
        ((2000, 3000), "1080p", "source", (1080, 1620)),
        ((1001, 999), "480p", "source", (480, 480)),
        ((8000, 1000), "720p", "source", (1680, 720)),  # clamped to 21:9
        ((1000, 8000), "720p", "source", (720, 1680)),  # clamped to 9:21
    ],
)
def test_output_size(image_size, resolution, aspect, expected):
    assert output_size(image_size, resolution, aspect) == expected


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("aspect", ASPECTS)
def test_output_size_is_even_with_the_short_side_at_the_resolution(resolution, aspect):
    for image_size in [(640, 400), (333, 777), (1921, 1079), (4000, 4001)]:
        width, height = output_size(image_size, resolution, aspect)
        assert width % 2 == 0 and height % 2 == 0
        assert min(width, height) == RESOLUTIONS[resolution]


# --- Camera paths ---------------------------------------------------------------------------
@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("strength", [1, 5, 10])
def test_camera_stays_inside_the_picture_with_the_output_shape(motion, strength):
    size = (1350, 900)
    boxes = list(camera_path(motion, strength, 48, size))
    assert len(boxes) == 48
    for x0, y0, x1, y1 in boxes:
        assert -1e-6 <= x0 < x1 <= size[0] + 1e-6 and -1e-6 <= y0 < y1 <= size[1] + 1e-6
        assert (x1 - x0) / (y1 - y0) == pytest.approx(1.5)
    # The tightest window is exactly the output size times the maximum zoom.
    assert min(x1 - x0 for x0, _, x1, _ in boxes) == pytest.approx(
        size[0] / max_zoom(motion, strength)
    )
    assert boxes[0] != boxes[-1]


@pytest.mark.parametrize("motion", MOTIONS)
def test_camera_eases_in_and_out(motion):
    boxes = list(camera_path(motion, 5, 60, (1350, 900)))
    steps = [math.dist(a, b) for a, b in zip(boxes, boxes[1:], strict=False)]
    assert steps[0] < steps[len(steps) // 2] / 5 and steps[-1] < steps[len(steps) // 2] / 5


# --- Settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("duration", 0.5, "between 1 and 10"),
        ("duration", 11, "between 1 and 10"),
        ("duration", float("nan"), "between 1 and 10"),
        ("duration", "5", "between 1 and 10"),
        ("resolution", "4k", "480p, 720p, 1080p"),
        ("aspect", "4:3", "source, 16:9, 9:16, 1:1"),
        ("fps", 7, "between 8 and 30"),
        ("fps", 60, "between 8 and 30"),
        ("fps", 24.5, "between 8 and 30"),
        ("motion", "spin", "zoom_in"),
        ("strength", 0, "between 1 and 10"),
        ("strength", 11, "between 1 and 10"),
    ],
)
def test_invalid_settings_name_the_field_and_its_limit(tmp_path, field, value, limit):
    settings = RenderSettings(**{**FAST, field: value})
    with pytest.raises(ValueError, match=f"^{field} must .*{limit}") as raised:
        settings.validate()
    assert raised.value.field == field
    with pytest.raises(ValueError, match=f"^{field} "):
        render_video(picture(), tmp_path / "out.mp4", settings)
    assert list(tmp_path.iterdir()) == []


def test_defaults_are_valid_and_frame_count_rounds():
    RenderSettings().validate()
    assert RenderSettings().frame_count == 120
    assert RenderSettings(duration=2.5, fps=25).frame_count == 62
    assert RenderSettings(duration=1.03, fps=30).frame_count == 31


# --- Rendering ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("resolution", "aspect", "expected"),
    [
        ("480p", "source", (720, 480)),
        ("480p", "16:9", (854, 480)),
        ("480p", "9:16", (480, 854)),
        ("480p", "1:1", (480, 480)),
        ("720p", "source", (1080, 720)),
        ("1080p", "16:9", (1920, 1080)),
    ],
)
def test_renders_browser_playable_h264(tmp_path, resolution, aspect, expected):
    out, poster = tmp_path / "clip.mp4", tmp_path / "clip.jpg"
    settings = RenderSettings(duration=1, resolution=resolution, aspect=aspect, fps=8)
    result = render_video(picture(), out, settings, poster_path=poster)

    assert result == RenderResult(
        width=expected[0],
        height=expected[1],
        frames=8,
        fps=8,
        duration=1.0,
        size_bytes=out.stat().st_size,
    )
    info = probe(out)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert info["size"] == expected
    assert info["rate"] == 8
    assert info["colorspace"] == 1  # tagged BT.709, as the pixels were converted
    assert len(info["frames"]) == 8
    assert abs(info["stream_duration"] - 1.0) <= 1 / 8
    assert abs(info["container_duration"] - 1.0) <= 1 / 8
    assert top_level_atoms(out).index("moov") < top_level_atoms(out).index("mdat")

    with Image.open(poster) as jpeg:
        assert jpeg.format == "JPEG"
        assert jpeg.size == expected
        jpeg.load()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.jpg", "clip.mp4"]


def test_frame_count_and_duration_match_the_request(tmp_path):
    out = tmp_path / "clip.mp4"
    settings = RenderSettings(duration=2.3, resolution="480p", fps=13, motion="pan_right")
    result = render_video(picture(), out, settings)
    info = probe(out)
    assert result.frames == len(info["frames"]) == 30
    assert result.duration == pytest.approx(30 / 13)
    assert abs(info["stream_duration"] - 2.3) <= 1 / 13
    assert abs(info["container_duration"] - 2.3) <= 1 / 13


@pytest.mark.parametrize("motion", MOTIONS)
def test_every_motion_moves_the_picture(tmp_path, motion):
    out = tmp_path / "clip.mp4"
    render_video(picture(), out, RenderSettings(**FAST, motion=motion))
    frames = probe(out)["frames"]
    assert mean_difference(frames[0], frames[-1]) > 3
    assert mean_difference(frames[0], frames[1]) < mean_difference(frames[0], frames[-1])


def test_colours_survive_encoding(tmp_path):
    out, poster = tmp_path / "clip.mp4", tmp_path / "clip.jpg"
    colour = (200, 60, 40)
    render_video(
        Image.new("RGB", (640, 480), colour), out, RenderSettings(**FAST), poster_path=poster
    )
    with av.open(str(out)) as container:
        frame = next(container.decode(video=0))
        rgb = frame.reformat(
            format="rgb24",
            src_colorspace="ITU709",
            src_color_range="MPEG",
            dst_color_range="JPEG",
        )
        decoded = rgb.to_image().getpixel((100, 100))
    assert all(abs(a - b) <= 4 for a, b in zip(decoded, colour, strict=True))
    with Image.open(poster) as jpeg:
        assert all(abs(a - b) <= 4 for a, b in zip(jpeg.getpixel((100, 100)), colour, strict=True))


def test_progress_rises_to_the_total_and_the_file_appears_only_at_the_end(tmp_path):
    out = tmp_path / "clip.mp4"
    calls = []

    def progress(done, total):
        calls.append((done, total))
        assert out.exists() == (done == total)

    render_video(
        picture(), out, RenderSettings(duration=3, resolution="480p", fps=10), progress=progress
    )
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {30}
    assert done == sorted(set(done)) and done[-1] == 30
    assert all(b - a <= 2 for a, b in zip([0, *done], done, strict=False))  # at least every ~5%


def test_stopping_leaves_no_file_behind(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous video")  # an earlier render is untouched
    checks = []

    def should_stop():
        checks.append(1)
        return len(checks) > 1  # the check after the first few frames

    with pytest.raises(RenderStopped):
        render_video(
            picture(),
            out,
            RenderSettings(**FAST),
            poster_path=tmp_path / "p.jpg",
            should_stop=should_stop,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    assert out.read_bytes() == b"previous video"


def test_an_existing_file_is_replaced(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old")
    render_video(picture(), str(out), RenderSettings(**FAST))
    assert probe(out)["codec"] == "h264"


def test_renders_from_a_path_honouring_exif_orientation(tmp_path):
    source = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotate 90 degrees clockwise)
    picture((600, 400)).save(source, exif=exif, quality=90)
    result = render_video(source, tmp_path / "clip.mp4", RenderSettings(**FAST))
    assert (result.width, result.height) == (480, 720)
    assert probe(tmp_path / "clip.mp4")["size"] == (480, 720)


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        render_video(tmp_path / "nope.jpg", tmp_path / "clip.mp4", RenderSettings(**FAST))
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    with pytest.raises(ValueError, match="could not be read"):
        render_video(not_an_image, tmp_path / "clip.mp4", RenderSettings(**FAST))


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "LA", "CMYK", "I;16", "1"])
def test_any_image_mode_becomes_rgb(mode):
    source = picture((64, 48))
    if mode == "I;16":
        image = source.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    else:
        image = source.convert(mode)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (64, 48)
    if mode in ("L", "I;16"):
        grey = source.convert("L").getpixel((10, 10))
        assert abs(rgb.getpixel((10, 10))[0] - grey) <= 1


def test_transparency_is_laid_over_white(tmp_path):
    image = Image.new("RGBA", (640, 480), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 320, 480))
    flat = to_rgb(image)
    assert flat.getpixel((600, 10)) == (255, 255, 255)
    assert flat.getpixel((10, 10)) == (0, 0, 255)
    result = render_video(image, tmp_path / "clip.mp4", RenderSettings(**FAST))
    assert (result.width, result.height) == (640, 480)


def test_small_pictures_are_scaled_up(tmp_path):
    result = render_video(picture((120, 80)), tmp_path / "clip.mp4", RenderSettings(**FAST))
    assert probe(tmp_path / "clip.mp4")["size"] == (result.width, result.height) == (720, 480)
