"""Deleting a finished video: who may, what goes (our files, at once), what stays (the job row
and every ledger row), and that another team cannot even find the route."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from studio.jobs.deletion import delete_video
from studio.models import Job, LedgerEntry
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def finished(personas, creator):
    job = make_job(personas.team, creator, state="succeeded")
    job.video.save("v.mp4", ContentFile(b"\x00" * 64), save=False)
    job.poster.save("p.jpg", ContentFile(b"\xff\xd8"), save=False)
    Job.objects.filter(pk=job.pk).update(video=job.video.name, poster=job.poster.name)
    job.refresh_from_db()
    return job


def delete_url(job):
    return reverse("job_delete", args=[job.team.slug, job.pk])


def test_the_creator_deletes_the_video_and_the_ledger_is_untouched(
    personas, client_for, django_capture_on_commit_callbacks
):
    job = finished(personas, personas.member)
    storage, names = job.video.storage, [job.video.name, job.poster.name]
    ledger_before = list(LedgerEntry.objects.order_by("id").values_list("id", "kind", "amount"))

    client = client_for(personas.member)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(delete_url(job))
    assert response.status_code == 302 and response["Location"].endswith("/gallery/")

    job.refresh_from_db()
    assert job.deleted_at is not None and not job.video and not job.poster
    assert job.provider_delete_due_at is None  # our own engine keeps no copy elsewhere
    assert not any(storage.exists(name) for name in names)
    after = list(LedgerEntry.objects.order_by("id").values_list("id", "kind", "amount"))
    assert after == ledger_before
    gallery = client.get(reverse("gallery", args=[job.team.slug]) + "?state=succeeded")
    assert str(job.pk) not in gallery.content.decode()
    page = client.get(reverse("job_detail", args=[job.team.slug, job.pk])).content.decode()
    assert 'id="deleted"' in page and 'id="player"' not in page
    video = reverse("job_file", args=[job.team.slug, job.pk, "video"])
    assert client.get(video).status_code == 404


def test_deleting_twice_changes_nothing_the_second_time(personas):
    job = finished(personas, personas.member)
    membership = personas.membership(personas.member)
    assert delete_video(membership, job) is True
    first = Job.objects.get(pk=job.pk).deleted_at
    assert delete_video(membership, job) is False
    assert Job.objects.get(pk=job.pk).deleted_at == first


def test_an_admin_may_delete_anyones_video_but_another_member_may_not(personas, client_for):
    job = finished(personas, personas.owner)
    from studio.models import Membership, Role, User

    other = User.objects.create_user("other@a.test", "pw-other-123")
    Membership.objects.create(team=personas.team, user=other, role=Role.MEMBER)
    response = client_for(other).post(delete_url(job), follow=True)
    assert "Only whoever made the video" in response.content.decode()
    assert Job.objects.get(pk=job.pk).deleted_at is None

    viewer_answer = client_for(personas.viewer).post(delete_url(job))
    assert viewer_answer.status_code == 403
    assert Job.objects.get(pk=job.pk).deleted_at is None

    admin_job = finished(personas, personas.member)
    client_for(personas.owner).post(delete_url(admin_job))
    assert Job.objects.get(pk=admin_job.pk).deleted_at is not None


def test_a_running_job_cannot_be_deleted(personas, client_for):
    job = make_job(personas.team, personas.member, state="running")
    response = client_for(personas.member).post(delete_url(job), follow=True)
    assert "still running" in response.content.decode()
    assert Job.objects.get(pk=job.pk).deleted_at is None


def test_another_team_gets_404(personas, client_for):
    job = finished(personas, personas.member)
    assert client_for(personas.outsider).post(delete_url(job)).status_code == 404
    assert Job.objects.get(pk=job.pk).deleted_at is None
