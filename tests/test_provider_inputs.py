"""The input image as a provider fetches it (studio.inputs): a signed, expiring URL that serves the
fitted picture, without its metadata, to whoever holds it, and nothing to anyone else."""

import io
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.core.files.base import ContentFile
from django.test import Client
from PIL import Image

from studio import inputs
from studio.inputs import INPUT_URL_MAX_AGE, SALT, signed_input_url
from studio.jobs.states import transition
from studio.models import JobState
from studio.providers.modelslab import ModelsLab
from tests.conftest import make_image_bytes
from tests.factories import make_job

S = JobState
pytestmark = pytest.mark.django_db
GPS_IFD, MAKE = 0x8825, 0x010F


@pytest.fixture
def client():
    return Client(raise_request_exception=False)  # anonymous: no login, as a provider fetches


def phone_photo(size=(1600, 1200)) -> bytes:
    """A JPEG with a camera make and a GPS position in its EXIF."""
    image = Image.open(io.BytesIO(make_image_bytes("PNG", size))).convert("RGB")
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (52.0, 22.0, 7.5), 3: "E", 4: (4.0, 53.0, 2.1)})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=90)
    return buffer.getvalue()


@pytest.fixture
def job(personas, settings):
    """A ModelsLab img2video job being submitted, its input fitted for the provider."""
    settings.MODELSLAB_API_KEY = "ml-test-key"
    job = make_job(
        personas.team, personas.member, state=S.SUBMITTING, provider="modelslab", model="img2video"
    )
    job.input_image.save("photo.jpg", ContentFile(phone_photo()), save=True)
    with Image.open(job.input_image.open("rb")) as original:
        assert original.getexif().get_ifd(GPS_IFD)  # the member's upload does carry it
    ModelsLab().prepare_input(job)
    return job


def path_of(url: str) -> str:
    return urlsplit(url).path


def fetch(client, job_or_url):
    url = job_or_url if isinstance(job_or_url, str) else signed_input_url(job_or_url)
    return client.get(path_of(url))


def token_of(job) -> str:
    return path_of(signed_input_url(job)).rstrip("/").rsplit("/", 1)[-1]


def served_image(answer) -> Image.Image:
    image = Image.open(io.BytesIO(b"".join(answer.streaming_content)))
    image.load()
    return image


def test_the_signed_url_serves_the_fitted_image_without_a_login(client, job, settings):
    url = signed_input_url(job)
    assert url.startswith(f"{settings.PUBLIC_BASE_URL}/inputs/")
    answer = fetch(client, url)
    assert answer.status_code == 200
    assert answer["Content-Type"] in ("image/png", "image/jpeg")
    assert "no-store" in answer["Cache-Control"]
    image = served_image(answer)
    assert image.size == (512, 384)  # fitted within 512 px, not the 1600×1200 upload
    with job.provider_input.open("rb") as fitted:
        assert served_image(fetch(client, url)).tobytes() == Image.open(fitted).tobytes()


def test_the_served_image_carries_no_exif(client, job):
    image = served_image(fetch(client, job))
    assert not image.getexif() and not image.getexif().get_ifd(GPS_IFD)
    assert "exif" not in image.info and "icc_profile" not in image.info


def test_an_altered_or_foreign_token_is_404(client, job, personas):
    token = token_of(job)
    value, _, signature = token.rpartition(":")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other = make_job(personas.team, personas.member, state=S.SUBMITTING, provider="modelslab")
    forged = [
        f"{value}:{flipped}",  # the signature altered
        token_of(other).rpartition(":")[0] + ":" + signature,  # another job's value, our signature
        signing.dumps(job.pk.hex, salt="studio.somewhere-else"),  # signed for another purpose
        signing.dumps(job.pk.hex),  # no salt
        signing.dumps(job.pk.hex, salt=SALT, key="not-our-secret-key"),  # not our key
        job.pk.hex,
        "",
        "%00",
    ]
    for token in forged:
        assert client.get(f"/inputs/{token}/").status_code == 404, token
    assert fetch(client, job).status_code == 200


def test_an_expired_url_is_404(client, job, monkeypatch):
    now = time.time()

    def made_ago(seconds):
        monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: now - seconds))
        url = signed_input_url(job)
        monkeypatch.setattr(signing, "time", time)
        return url

    assert fetch(client, made_ago(INPUT_URL_MAX_AGE - 60)).status_code == 200
    assert fetch(client, made_ago(INPUT_URL_MAX_AGE + 5)).status_code == 404
    monkeypatch.setattr(inputs, "INPUT_URL_MAX_AGE", 30)
    assert fetch(client, made_ago(60)).status_code == 404


@pytest.mark.parametrize("end", [S.FAILED, S.EXPIRED])
def test_a_finished_jobs_input_is_404(client, job, end):
    url = signed_input_url(job)
    assert fetch(client, url).status_code == 200
    assert transition(job, S.SUBMITTING, end, error="done")
    assert fetch(client, url).status_code == 404


def test_a_succeeded_jobs_input_is_404(client, job):
    url = signed_input_url(job)
    assert transition(job, S.SUBMITTING, S.RUNNING)
    assert fetch(client, url).status_code == 200  # the provider may fetch it while it runs
    assert transition(job, S.RUNNING, S.SUCCEEDED)
    assert fetch(client, url).status_code == 404


def test_a_job_without_a_fitted_input_serves_nothing(client, personas):
    queued = make_job(personas.team, personas.member, provider="modelslab", model="img2video")
    assert fetch(client, queued).status_code == 404


def test_only_get_is_allowed(client, job):
    assert client.post(path_of(signed_input_url(job))).status_code == 405


def test_a_file_sent_beside_the_image_is_served_while_the_job_runs_and_never_after(
    personas, client
):
    from studio.inputs import signed_asset_url
    from studio.models import AssetRole, JobAsset

    job = make_job(personas.team, personas.member, state="running")
    asset = JobAsset(job=job, role=AssetRole.STATIC_MASK, content_type="image/png")
    asset.file.save("mask.png", ContentFile(make_image_bytes("PNG", (64, 40))), save=True)
    path = urlsplit(signed_asset_url(asset)).path
    answer = client.get(path)
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    assert b"".join(answer.streaming_content) == asset.file.open("rb").read()
    assert answer["Cache-Control"] == "private, no-store"
    forged = path.replace(path.split("/")[-2], signing.dumps(asset.pk, salt=SALT))
    assert client.get(forged).status_code == 404  # the input image's signature is not an asset's
    transition(job, S.RUNNING, S.FAILED, error="stopped")
    assert client.get(path).status_code == 404
