import av
import pytest
from django.core.management import CommandError, call_command

from tests.conftest import make_image_bytes


def test_render_local_writes_a_valid_mp4_and_poster(tmp_path, capsys):
    photo, out = tmp_path / "photo.jpg", tmp_path / "out.mp4"
    photo.write_bytes(make_image_bytes("JPEG", (1200, 800)))
    call_command(
        "render_local",
        str(photo),
        str(out),
        "--duration",
        "2",
        "--resolution",
        "480p",
        "--fps",
        "12",
        "--motion",
        "pan_left",
    )
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert (stream.codec_context.width, stream.codec_context.height) == (720, 480)
        assert sum(1 for _ in container.decode(stream)) == 24
    assert (tmp_path / "out.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert "24 frames" in capsys.readouterr().out


def test_render_local_names_the_bad_option(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(make_image_bytes())
    with pytest.raises(CommandError, match="fps must be a whole number between 8 and 30, got 60"):
        call_command("render_local", str(photo), str(tmp_path / "o.mp4"), "--fps", "60")
