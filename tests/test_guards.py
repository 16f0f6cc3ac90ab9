"""Guards that only matter when something goes wrong at the worst moment: a task delivered twice,
a worker killed after a claim, a race lost at the finish, an error while a job is being created.
Each test here goes red when its guard is taken out."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from studio import tasks
from studio.jobs import outputs
from studio.jobs.states import transition
from studio.jobs.submit import submit_job
from studio.models import EntryKind, IncidentKind, Job, JobState, ProviderIncident
from studio.providers import PROVIDERS
from studio.providers.base import AssetDraft
from tests.conftest import FAST_PARAMS, make_image_bytes
from tests.factories import make_job
from tests.providers import ledger_kinds

S = JobState


def stored_files(media_root, *folders) -> list[Path]:
    return [p for folder in folders for p in (media_root / folder).rglob("*") if p.is_file()]


# --- (a) A render task delivered twice while the first delivery renders ---------------------
def test_a_second_delivery_of_a_running_render_does_not_render_again(
    personas, media_root, monkeypatch
):
    """Both deliveries read the job while it was still submitting; the second one arrives while
    the first renders. Only the delivery whose claim (SUBMITTING → RUNNING) won may render."""
    import studio.providers.local as local

    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    first, second = Job.objects.get(pk=job.pk), Job.objects.get(pk=job.pk)
    renders = []
    real_render = local.render_video

    def counting_render(*args, **kwargs):
        renders.append(1)
        return real_render(*args, **kwargs)

    real_report = local._report_progress

    def second_delivery_midway(job_, done, total):
        real_report(job_, done, total)
        if done == 1:  # the duplicate arrives while the first delivery is rendering
            PROVIDERS["local"].render(second)

    monkeypatch.setattr(local, "render_video", counting_render)
    monkeypatch.setattr(local, "_report_progress", second_delivery_midway)
    PROVIDERS["local"].render(first)
    job.refresh_from_db()
    assert len(renders) == 1
    assert job.state == S.SUCCEEDED and job.video
    assert stored_files(media_root, "videos") == [media_root / job.video.name]


# --- (b) A submission whose worker was killed after the claim -------------------------------
def stalled_submission(personas, **fields) -> Job:
    """The engine claimed the job (QUEUED → SUBMITTING) and its process died before sending:
    nothing will ever move the job but the sweep, once the claim's lease has run out."""
    past = timezone.now() - timedelta(seconds=1)
    return make_job(personas.team, personas.member, state=S.SUBMITTING, next_poll_at=past, **fields)


def test_the_sweep_fails_a_stalled_remote_submission_with_a_refund(personas, monkeypatch):
    """Stability cannot tell us later whether it got the job: it is never sent again (it may
    have been sent), the credits return and staff see an incident."""
    sent = []
    monkeypatch.setattr(type(PROVIDERS["stability"]), "submit", lambda self, job: sent.append(job))
    job = stalled_submission(
        personas,
        provider="stability",
        model="stable-video-diffusion",
        deadline_at=timezone.now() + timedelta(minutes=30),
    )
    tasks.sweep()
    job.refresh_from_db()
    assert job.state == S.FAILED and "could not confirm" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN
    assert sent == []


def test_the_sweep_hands_a_stalled_local_submission_out_again(personas):
    """Our own engine spent nothing: the job is queued again and rendered."""
    job = stalled_submission(personas, submit_attempts=1)
    tasks.sweep()  # back to queued ...
    job.refresh_from_db()
    assert job.state == S.QUEUED
    tasks.sweep()  # ... and submitted again
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.submit_attempts == 2


# --- (c) The loser of the final race deletes what it wrote ----------------------------------
def test_a_render_that_loses_the_final_race_deletes_its_files(personas, media_root, monkeypatch):
    """The job is canceled after the render stored its files but before it could succeed."""
    import studio.providers.local as local

    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    real_store = local._store

    def store_then_cancel(path, name):
        stored = real_store(path, name)
        if name.startswith("posters/"):  # both files are stored: the race is lost now
            transition(job.pk, S.RUNNING, S.CANCELED, error="Canceled.")
        return stored

    monkeypatch.setattr(local, "_store", store_then_cancel)
    PROVIDERS["local"].render(job)
    job.refresh_from_db()
    assert job.state == S.CANCELED and not job.video and not job.poster
    assert stored_files(media_root, "videos", "posters") == []


def test_a_copy_that_loses_the_final_race_deletes_its_files(
    finished_remote_job, media_root, monkeypatch
):
    """Collecting an output: the job expires after our copies are stored, before they count."""
    job = finished_remote_job
    real_store = outputs._store

    def store_then_expire(path, name):
        stored = real_store(path, name)
        if name.startswith("posters/"):
            transition(job.pk, S.RUNNING, S.EXPIRED, error="Too late.")
        return stored

    monkeypatch.setattr(outputs, "_store", store_then_expire)
    outputs.collect_output(job.pk)
    job.refresh_from_db()
    assert job.state == S.EXPIRED and not job.video
    assert stored_files(media_root, "videos", "posters", "originals") == []


# --- (d) Creating a job fails for a reason other than credits -------------------------------
def test_a_job_that_cannot_be_created_leaves_no_files(
    personas, image_upload, media_root, monkeypatch
):
    """Any error inside the creating transaction (here, the broker) rolls the row back, and the
    stored image and assets go with it."""

    def broker_down(job):
        raise ConnectionError("the broker is unreachable")

    monkeypatch.setattr("studio.jobs.submit.enqueue_job", broker_down)
    draft = AssetDraft(
        role="tail_image", data=make_image_bytes(), extension="png", content_type="image/png"
    )
    with pytest.raises(ConnectionError):
        submit_job(
            personas.membership(personas.member),
            image_upload(),
            "local",
            dict(FAST_PARAMS),
            drafts=[draft],
        )
    assert not Job.objects.exists()
    assert [p for p in media_root.rglob("*") if p.is_file()] == []
