"""Every way an upload is refused: the page says what was wrong, and nothing is created."""

import struct
import zlib

import pytest

from studio.models import Job
from studio.uploads import UploadRefused, check_image
from tests.conftest import FAST_PARAMS, make_image_bytes


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size but carries almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def gif_bytes() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), "red").save(buffer, "GIF")
    return buffer.getvalue()


REFUSALS = {
    "empty": (lambda: b"", "empty"),
    "gif": (gif_bytes, "only PNG, JPEG and WebP"),
    "text named png": (lambda: b"hello, I am not a picture" * 20, "not an image we can read"),
    "too many pixels": (
        lambda: png_header_only(8000, 8000),
        "8000×8000 (64.0 megapixels); the limit is 40 megapixels",
    ),
    "decompression bomb": (
        lambda: png_header_only(60000, 60000),
        "far too many pixels; the limit is 40 megapixels",
    ),
    "too small": (lambda: make_image_bytes("PNG", (40, 300)), "at least 64 pixels"),
    "truncated jpeg": (lambda: make_image_bytes("JPEG")[:2000], "damaged or incomplete"),
    "truncated png": (lambda: make_image_bytes("PNG")[:3000], "damaged or incomplete"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_the_page_refuses_a_bad_upload_and_creates_nothing(
    personas, client_for, image_upload, media_root, case
):
    content, expected = REFUSALS[case]
    upload = image_upload(name="photo.png", content=content())
    client = client_for(personas.member)
    response = client.post(
        f"/t/{personas.team.slug}/jobs/new/", {"image": upload, "provider": "local", **FAST_PARAMS}
    )
    assert response.status_code == 200
    assert expected in response.content.decode()
    assert Job.objects.count() == 0
    assert not any(p.is_file() for p in media_root.rglob("*")) if media_root.exists() else True


def test_an_upload_over_the_byte_limit_is_refused_with_both_sizes(settings, image_upload):
    settings.MAX_UPLOAD_BYTES = 10_240
    upload = image_upload(content=make_image_bytes("PNG")[:100] + b"\0" * 20_480)
    with pytest.raises(UploadRefused, match=r"^The image is 20 KB; the limit is 10 KB\.$"):
        check_image(upload)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_the_format_is_read_from_the_content_not_the_name(image_upload, fmt):
    checked = check_image(image_upload(fmt, name="misleading.gif"))
    assert checked.format == fmt and (checked.width, checked.height) == (640, 400)
    assert checked.storage_name().endswith("." + checked.extension)
    assert "misleading" not in checked.storage_name()


def test_an_oversized_request_is_refused_before_its_body_is_parsed(personas, settings):
    from django.test import Client

    settings.MAX_UPLOAD_BYTES = 100_000
    client = Client(enforce_csrf_checks=True)  # the CSRF check reads the body: it must come after
    client.force_login(personas.member)
    big = image_upload_of(b"\0" * 400_000)
    response = client.post(f"/t/{personas.team.slug}/jobs/new/", {"image": big, **FAST_PARAMS})
    assert response.status_code == 413
    assert "The upload is 391 KB; the limit is 98 KB." in response.content.decode()
    assert not hasattr(response.wsgi_request, "_files")  # the body was never parsed
    assert Job.objects.count() == 0


def image_upload_of(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("big.png", data, content_type="image/png")


def test_parameters_out_of_range_are_refused_field_by_field(personas, client_for, image_upload):
    client = client_for(personas.member)
    bad = {**FAST_PARAMS, "duration": 11, "fps": 4, "strength": 0, "motion": "spin"}
    response = client.post(
        f"/t/{personas.team.slug}/jobs/new/", {"image": image_upload(), "provider": "local", **bad}
    )
    page = response.content.decode()
    assert "Duration must be at most 10 seconds." in page
    assert "Frames per second must be at least 8." in page
    assert "Motion strength must be at least 1." in page
    assert "Camera motion must be one of: zoom_in, zoom_out" in page
    assert Job.objects.count() == 0


def test_a_phone_jpeg_with_extra_pictures_is_accepted_as_jpeg(image_upload):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    frames = [Image.new("RGB", (400, 300), c) for c in ("red", "blue")]
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:])
    checked = check_image(image_upload(content=buffer.getvalue(), name="IMG_0001.JPG"))
    assert checked.format == "MPO" and checked.extension == "jpg"


@pytest.mark.parametrize(
    ("referer", "back"),
    [
        ("http://testserver/t/x/jobs/new/", "http://testserver/t/x/jobs/new/"),
        ("/t/x/gallery/", "/t/x/gallery/"),
        ("https://evil.example/phish", "/"),
        ("javascript:alert(1)", "/"),
        ("//evil.example/", "/"),
    ],
)
def test_the_too_large_page_goes_back_only_to_our_own_pages(personas, settings, referer, back):
    from django.test import Client

    settings.MAX_UPLOAD_BYTES = 100_000
    client = Client()
    client.force_login(personas.member)
    big = image_upload_of(b"\0" * 400_000)
    page = client.post(
        f"/t/{personas.team.slug}/jobs/new/", {"image": big}, HTTP_REFERER=referer
    ).content.decode()
    assert f'<a href="{back}">Go back</a>' in page


def test_an_oversized_api_upload_answers_in_the_api_error_shape(personas, settings):
    from django.test import Client

    from studio.api.tokens import create_token

    settings.MAX_UPLOAD_BYTES = 100_000
    raw = create_token(personas.membership(personas.member), "t", "rw")[1]
    answer = Client().post(
        "/api/v1/jobs",
        {"image": image_upload_of(b"\0" * 400_000)},
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == {
        "code": "too_large",
        "message": "The upload is 391 KB; the limit is 98 KB.",
        "field": "image",
    }
    assert Job.objects.count() == 0


def test_figures_never_contradict_themselves():
    from studio.uploads import size_over_limit

    # 21,000,000 bytes was "20.0 MB; the limit is 20.0 MB".
    assert size_over_limit(21_000_000, 20 * 1024 * 1024) == "20.03 MB; the limit is 20.00 MB"
    assert size_over_limit(20 * 1024 * 1024 + 1, 20 * 1024 * 1024) == (
        "20,971,521 bytes; the limit is 20,971,520 bytes"
    )
    assert size_over_limit(400_000, 100_000) == "391 KB; the limit is 98 KB"


def test_a_refusal_is_said_once(personas, client_for, image_upload):
    page = (
        client_for(personas.member)
        .post(
            f"/t/{personas.team.slug}/jobs/new/",
            {"provider": "local", "model": "camera-motion-v1", "image": image_upload(content=b"")},
        )
        .content.decode()
    )
    assert page.count("The image file is empty.") == 1
    assert "The submitted file is empty" not in page
