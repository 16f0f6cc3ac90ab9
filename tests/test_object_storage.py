"""Media on S3 (a real S3 server, moto's, over HTTP: tests/s3.py): uploads, renders, provider
outputs and posters land in the bucket and nowhere on disk; members are redirected to short-lived
presigned URLs that answer Range themselves, outsiders get nothing; deleting a video removes its
objects. On local disk behind nginx, a file is an X-Accel-Redirect with no body."""

import io
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.test import override_settings
from django.urls import reverse

from project.object_storage import media_origins, s3_storage
from studio.api.files import file_links
from studio.jobs import scratch
from studio.models import Job, JobState
from studio.storage import is_object_storage
from tests.conftest import FAST_PARAMS
from tests.factories import make_job
from tests.providers import run_engine_until, settled, submit
from tests.s3 import REGION, use_bucket
from tests.test_settings import start

S = JobState


def files_on_disk(folder) -> list:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


@pytest.fixture
def rendered(s3_media, personas, client_for, image_upload, django_capture_on_commit_callbacks):
    """On S3, a member submits a photo on the form; the local engine renders it (inline worker)."""
    client = client_for(personas.member)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/t/{personas.team.slug}/jobs/new/",
            {"image": image_upload("JPEG"), "provider": "local", **FAST_PARAMS},
        )
    job = Job.objects.get()
    assert job.state == S.SUCCEEDED, job.error
    return client, response.url, job


def test_an_overridden_storage_is_used_and_undone(s3_server):
    """What the s3_media fixture relies on: changing STORAGES swaps default_storage (a lazy
    object, cached once built), which every FileField uses, and the change is undone after."""
    assert isinstance(default_storage, FileSystemStorage)  # built, and cached, before
    options = s3_storage(bucket="studio-undo", endpoint_url=s3_server, region=REGION)
    with override_settings(STORAGES={**django_settings.STORAGES, "default": options}):
        assert is_object_storage(default_storage) and default_storage.bucket_name == "studio-undo"
        assert Job._meta.get_field("video").storage.bucket_name == "studio-undo"
    assert isinstance(default_storage, FileSystemStorage)
    assert isinstance(Job._meta.get_field("video").storage, FileSystemStorage)


def test_an_upload_and_its_render_land_in_the_bucket_and_nothing_on_disk(
    s3_media, rendered, media_root
):
    client, url, job = rendered
    keys = s3_media.keys()
    assert job.input_image.name in keys and job.input_image.name.startswith("inputs/")
    assert f"videos/{job.team_id}/{job.pk.hex}.mp4" == job.video.name
    assert f"posters/{job.team_id}/{job.pk.hex}.jpg" == job.poster.name
    assert {job.video.name, job.poster.name} <= set(keys)
    assert files_on_disk(media_root) == []
    with av.open(io.BytesIO(s3_media.read(job.video.name))) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and sum(1 for _ in container.decode(stream)) == 8
    assert job.video_bytes == len(s3_media.read(job.video.name))
    # Private: nobody is granted anything beyond the owner, and an unsigned GET is refused.
    grants = s3_media.client.get_object_acl(Bucket=s3_media.name, Key=job.video.name)["Grants"]
    assert all(grant["Grantee"].get("Type") == "CanonicalUser" for grant in grants)
    plain = f"{s3_media.endpoint}/{s3_media.name}/{job.video.name}"
    assert httpx.get(plain).status_code == 403


def test_a_member_is_sent_to_a_presigned_url_that_answers_range_itself(s3_media, rendered):
    client, url, job = rendered
    response = client.get(f"{url}files/video/")
    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    location = response["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Signature"]
    assert location.startswith(f"{s3_media.endpoint}/{s3_media.name}/{job.video.name}?")
    assert not response.content  # not a byte of the video through Django

    stored = s3_media.read(job.video.name)
    part = httpx.get(location, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == stored[:100]
    assert part.headers["Content-Range"] == f"bytes 0-99/{len(stored)}"
    assert part.headers["Content-Type"] == "video/mp4"

    download = client.get(f"{url}files/video/?download=1")
    assert download.status_code == 302 and download["Cache-Control"] == "private, no-store"
    got = httpx.get(download["Location"])
    name = f"{job.team.slug}-{str(job.pk)[:8]}.mp4"
    assert got.status_code == 200 and got.content == stored
    assert got.headers["Content-Disposition"] == f'attachment; filename="{name}"'

    poster = client.get(f"{url}files/poster/")
    assert poster.status_code == 302
    shown = httpx.get(poster["Location"])
    assert shown.headers["Content-Type"] == "image/jpeg"
    assert shown.content == s3_media.read(job.poster.name)


def test_the_api_link_redirects_to_the_object_too(s3_media, rendered, client):
    _, _, job = rendered
    response = client.get(file_links(job)["video"])
    assert response.status_code == 302 and response["Cache-Control"] == "private, no-store"
    assert httpx.get(response["Location"]).content == s3_media.read(job.video.name)


def test_another_team_gets_404_and_no_url(s3_media, rendered, personas, client_for):
    _, url, job = rendered
    client = client_for(personas.outsider)
    for kind in ("video", "poster", "input"):
        response = client.get(f"{url}files/{kind}/")
        assert response.status_code == 404
        assert "Location" not in response and "X-Accel-Redirect" not in response
        assert s3_media.name.encode() not in response.content
        assert b"X-Amz" not in response.content


def test_the_presigned_url_lives_only_as_long_as_configured(s3_media, rendered, settings):
    """The URL is signed with S3_PRESIGNED_TTL (S3 refuses it with 403 afterwards; moto's server
    checks neither expiry nor signatures of presigned URLs, so the signed lifetime is what we
    can see here), and without its signature the object is refused."""
    client, url, job = rendered
    use_bucket(settings, s3_media, presigned_ttl=1)
    location = client.get(f"{url}files/video/")["Location"]
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == ["1"] and query["X-Amz-Signature"]
    assert httpx.get(location.split("?")[0]).status_code == 403


def test_deleting_the_video_removes_its_objects(
    s3_media, rendered, personas, django_capture_on_commit_callbacks
):
    client, url, job = rendered
    names = [job.video.name, job.poster.name]
    assert set(names) <= set(s3_media.keys())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("job_delete", args=[job.team.slug, job.pk]))
    assert response.status_code == 302
    keys = s3_media.keys()
    assert not set(names) & set(keys)
    assert keys == [job.input_image.name]  # the job row and its input stay, as on disk
    assert client.get(f"{url}files/video/").status_code == 404


def test_a_saved_file_is_streamed_in_parts_never_read_whole(s3_media, tmp_path, monkeypatch):
    """A provider's video can be hundreds of MB: the upload reads it a part at a time."""
    reads = []

    class Watched(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            reads.append(len(data))
            return data

    class WatchedPath(type(tmp_path)):
        def open(self, mode="r", *args, **kwargs):
            assert mode == "rb"
            return Watched(self, "rb")

    monkeypatch.setattr(scratch, "Path", WatchedPath)
    path = tmp_path / "big.mp4"
    content = bytes(range(256)) * (20 * 1024 * 4)  # 20 MB: above S3's multipart threshold
    path.write_bytes(content)
    name = scratch.save_file(path, "videos/big.mp4")
    assert s3_media.read(name) == content
    assert sum(reads) >= len(content) and max(reads) <= 8 * 1024 * 1024


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_providers_output_is_copied_into_the_bucket(
    s3_media, personas, stability, image_upload, media_root
):
    """Stability's simulator over HTTP: the fitted input it is sent, its output and our copy and
    poster all go through the bucket; the provider's raw output is removed once copied."""
    job = submit(
        personas.membership(personas.member),
        image_upload(size=(1200, 800)),
        "stability",
        model="stable-video-diffusion",
    )
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    keys = s3_media.keys()
    assert {job.video.name, job.poster.name, job.input_image.name} <= set(keys)
    assert job.video.name == f"videos/{job.team_id}/{job.pk.hex}.mp4"
    assert not [key for key in keys if key.startswith("provider-outputs/")]
    with av.open(io.BytesIO(s3_media.read(job.video.name))) as container:
        assert next(container.decode(video=0))
    assert files_on_disk(media_root) == []


# --- Local disk behind nginx ------------------------------------------------------------------
def finished_on_disk(personas):
    job = make_job(personas.team, personas.member, state="succeeded")
    job.video.save("v.mp4", ContentFile(b"\x00" * 4096), save=False)
    Job.objects.filter(pk=job.pk).update(video=job.video.name)
    job.refresh_from_db()
    return job


def test_behind_nginx_a_member_gets_an_accel_redirect_and_no_body(personas, client_for, settings):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    job = finished_on_disk(personas)
    url = reverse("job_file", args=[job.team.slug, job.pk, "video"])
    client = client_for(personas.member)
    for headers in ({}, {"Range": "bytes=0-99"}):  # nginx answers the Range itself
        response = client.get(url, headers=headers)
        assert response.status_code == 200 and response.content == b""
        assert response["X-Accel-Redirect"] == f"/protected-media/{job.video.name}"
        assert response["Content-Type"] == "video/mp4"
        assert "Content-Disposition" not in response
    download = client.get(url + "?download=1")
    assert download["X-Accel-Redirect"] == f"/protected-media/{job.video.name}"
    assert download["Content-Disposition"] == (
        f'attachment; filename="{job.team.slug}-{str(job.pk)[:8]}.mp4"'
    )
    outsider = client_for(personas.outsider).get(url)
    assert outsider.status_code == 404 and "X-Accel-Redirect" not in outsider


def test_without_the_setting_local_files_still_stream_with_range(personas, client_for):
    job = finished_on_disk(personas)
    url = reverse("job_file", args=[job.team.slug, job.pk, "video"])
    part = client_for(personas.member).get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and "X-Accel-Redirect" not in part
    assert len(b"".join(part.streaming_content)) == 100


# --- Settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("place", "style"),
    [
        ({"endpoint_url": "http://127.0.0.1:9000"}, "auto"),
        ({"endpoint_url": "https://s3.example.com"}, "path"),
        ({"endpoint_url": "https://s3.example.com"}, "virtual"),
        ({"region": "eu-west-1"}, "auto"),
        ({"region": "eu-west-1"}, "path"),
        ({}, "auto"),
    ],
)
def test_the_content_security_policy_allows_where_presigned_urls_point(place, style):
    """The player and the poster follow our redirect to the object store: its origin must be in
    img-src and media-src. botocore builds the URL, so compare with what it builds."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    config = Config(signature_version=UNSIGNED, s3={"addressing_style": style})
    client = boto3.client(
        "s3",
        endpoint_url=place.get("endpoint_url"),
        region_name=place.get("region", "us-east-1"),
        config=config,
    )
    url = client.generate_presigned_url("get_object", Params={"Bucket": "studio-media", "Key": "k"})
    parts = urlsplit(url)
    allowed = media_origins(bucket="studio-media", addressing_style=style, **place)
    assert f"{parts.scheme}://{parts.netloc}" in allowed


def test_s3_settings_make_a_private_presigning_storage():
    env = {
        "S3_BUCKET": "studio-media",
        "S3_ENDPOINT_URL": "https://objects.example.com",
        "S3_REGION": "eu-central-1",
        "S3_ACCESS_KEY_ID": "id",
        "S3_SECRET_ACCESS_KEY": "secret",
        "S3_PRESIGNED_TTL": "120",
    }
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "o = s.STORAGES['default']['OPTIONS']; "
        "print(s.STORAGES['default']['BACKEND'], o['default_acl'], o['querystring_auth'], "
        "o['querystring_expire'], o['file_overwrite'], "
        "s.CONTENT_SECURITY_POLICY['DIRECTIVES']['media-src'])"
    )
    result = start(script, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 5) == [
        "storages.backends.s3.S3Storage",
        "None",
        "True",
        "120",
        "False",
        "[\"'self'\", 'blob:', 'https://objects.example.com']\n",
    ]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"S3_BUCKET": "Studio_Media"}, "S3_BUCKET must be an S3 bucket name"),
        ({"S3_ENDPOINT_URL": "http://127.0.0.1:9000"}, "S3_ENDPOINT_URL is set but S3_BUCKET"),
        ({"S3_BUCKET": "studio", "S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL must be"),
        ({"S3_BUCKET": "studio", "S3_ACCESS_KEY_ID": "id"}, "S3_ACCESS_KEY_ID and S3_SECRET"),
        ({"S3_BUCKET": "studio", "S3_ADDRESSING_STYLE": "dns"}, "S3_ADDRESSING_STYLE must be"),
        ({"S3_BUCKET": "studio", "S3_PRESIGNED_TTL": "0"}, "S3_PRESIGNED_TTL must be at least 1"),
        ({"S3_BUCKET": "studio", "S3_PRESIGNED_TTL": "604801"}, "S3_PRESIGNED_TTL must be at"),
        ({"MEDIA_ACCEL_REDIRECT": "protected"}, "MEDIA_ACCEL_REDIRECT must be a path"),
        (
            {"S3_BUCKET": "studio", "MEDIA_ACCEL_REDIRECT": "/protected-media/"},
            "MEDIA_ACCEL_REDIRECT is for local media",
        ),
    ],
)
def test_a_bad_storage_value_stops_start_up_naming_the_variable(env, named):
    result = start(**env)
    assert result.returncode != 0 and named in result.stderr
