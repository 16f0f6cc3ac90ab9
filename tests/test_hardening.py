"""Issue 9: requests that used to answer 500 now get a clear 4xx (or a 503 that charges nothing)."""

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from studio.models import Invite, Job, LedgerEntry
from tests.conftest import FAST_PARAMS
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def quiet_client(user) -> Client:
    """A client that shows a server error as a 500 answer instead of raising it."""
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_it_answers_416_to_a_range_too_long_to_be_a_number(personas):
    job = make_job(personas.team, personas.owner, state="succeeded")
    job.video.save("video.mp4", ContentFile(b"\0" * 1000))
    url = reverse("job_file", args=[personas.team.slug, job.pk, "video"])

    response = quiet_client(personas.member).get(url, HTTP_RANGE="bytes=" + "9" * 4301 + "-")

    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */1000"


def test_it_answers_404_to_an_invite_token_with_a_nul(personas):
    response = quiet_client(personas.outsider).get("/invites/%00/")

    assert response.status_code == 404


def test_it_answers_400_to_a_staff_search_with_a_nul(staff):
    response = quiet_client(staff).get("/staff/?q=%00")

    assert response.status_code == 400
    assert "NUL" in response.content.decode()


def test_it_answers_400_to_a_price_version_in_unicode_digits(staff, personas):
    response = quiet_client(staff).get("/staff/prices/?version=%C2%B2")

    assert response.status_code == 400
    assert "version must be" in response.content.decode()


def test_it_refuses_a_budget_figure_of_five_thousand_digits(personas):
    huge = "9" * 5000
    url = reverse("budgets", args=[personas.team.slug])
    member = personas.membership(personas.member)

    response = quiet_client(personas.owner).post(
        url, {"monthly_cap": huge, "low_balance_level": huge, f"limit-{member.pk}": huge}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "must be a whole number of credits" in page  # the member's limit, named
    assert set(response.context["form"].errors) == {"monthly_cap", "low_balance_level"}
    member.refresh_from_db()
    assert member.monthly_limit is None


def test_it_refuses_an_invite_address_longer_than_the_column(personas):
    email = "a" * 300 + "@example.com"
    url = reverse("invite_create", args=[personas.team.slug])

    client = quiet_client(personas.owner)
    response = client.post(url, {"email": email, "role": "member"})

    assert response.status_code == 302
    assert not Invite.objects.filter(team=personas.team).exists()
    page = client.get(response["Location"])  # the message is on the page
    assert "at most 254 characters" in page.content.decode()


def test_it_refuses_an_upload_when_the_media_folder_cannot_be_written(
    personas, image_upload, monkeypatch
):
    from django.core.files.storage import FileSystemStorage

    def unwritable(self, name, content):
        raise PermissionError(13, "Permission denied", name)

    # Tests run as root, which a read-only folder does not stop: fail the write itself instead.
    monkeypatch.setattr(FileSystemStorage, "_save", unwritable)
    entries_before = LedgerEntry.objects.count()
    url = reverse("job_new", args=[personas.team.slug])

    response = quiet_client(personas.member).post(
        url,
        {"provider": "local", "model": "camera-motion-v1", "image": image_upload()} | FAST_PARAMS,
    )

    assert response.status_code == 503
    assert "could not store your image" in response.content.decode()
    assert "nothing was charged" in response.content.decode()
    assert not Job.objects.exists()
    assert LedgerEntry.objects.count() == entries_before
