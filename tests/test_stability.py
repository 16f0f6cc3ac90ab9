"""Stability (EZLink) through its simulator over real HTTP: the whole life of a job, every
documented failure, the account's rate limit and a worker killed mid-submit."""

import os
import signal
import subprocess
import sys
import time

import av
import pytest

from studio.models import EntryKind, IncidentKind, Job, JobState, ProviderIncident
from tests import worker
from tests.providers import STABILITY_KEY, ledger_kinds, make_due, run_engine_until, settled, submit

S = JobState
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
SVD = {"model": "stable-video-diffusion"}


def test_a_job_goes_from_queued_to_a_stored_playable_video_charged_once(
    personas, stability, image_upload
):
    job = submit(
        personas.membership(personas.member),
        image_upload(size=(1200, 800)),
        "stability",
        **SVD,
        motion_bucket_id=180,
        cfg_scale=2.5,
        seed=42,
    )
    assert job.price_quoted == 20
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    with job.video.open("rb") as video, av.open(video) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and next(container.decode(stream))
    assert job.poster and job.video_width and job.video_duration > 0 and job.video_bytes > 0
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    generation = stability.generations[job.provider_job_id]
    assert generation.image_size == (1024, 576)  # fitted: a 3:2 photo → landscape
    assert generation.params == {"seed": "42", "cfg_scale": "2.5", "motion_bucket_id": "180"}
    user_id = generation.client_headers["stability-client-user-id"]
    assert "@" not in user_id and personas.member.email not in user_id
    assert job.key_fingerprint and STABILITY_KEY not in str(job.last_response)
    assert stability.violations == []
    assert not job.output_ref  # the provider's copy is no longer what we point at


def test_the_member_chooses_the_crop(personas, stability, image_upload):
    job = submit(
        personas.membership(personas.member),
        image_upload(size=(1200, 800)),
        "stability",
        **SVD,
        orientation="portrait",
        focus_x=90,
        focus_y=50,
    )
    assert run_engine_until(lambda: settled(job))
    assert stability.generations[job.provider_job_id].image_size == (576, 1024)


def test_a_filtered_generation_fails_refunds_and_is_recorded_for_staff(
    personas, stability, image_upload
):
    stability.plan_next(outcome="filtered")
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "content filter" in job.error and "not charged" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.FILTERED_CHARGED


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (403, "content moderation"),
        (400, "refused the parameters"),
        (413, "10 MiB"),
        (422, "rejected the request"),
        (401, "refused our API key"),
    ],
)
def test_a_refused_submission_fails_with_a_readable_message_and_a_refund(
    personas, stability, image_upload, status, words
):
    stability.plan_next(submit=status)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and words in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert job.submit_attempts == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_transient_submit_error_is_retried_and_then_succeeds(
    personas, stability, image_upload, status
):
    stability.plan_next(submit=status)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: settled(job), timeout=20)
    assert job.state == S.SUCCEEDED, job.error
    assert job.submit_attempts == 2 and len(stability.generations) == 1
    assert stability.violations == []  # after the 429 we paused the account, as documented


def test_poll_errors_are_retried_with_backoff(personas, stability, image_upload):
    stability.plan_next(poll_failures=[500, "garbage", 503, 429])
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: settled(job), timeout=30)
    assert job.state == S.SUCCEEDED, job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert stability.violations == []


def test_a_result_the_provider_no_longer_has_fails_with_a_refund(personas, stability, image_upload):
    stability.plan_next(run_seconds=5, retention_seconds=1)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    Job.objects.filter(pk=job.pk).update(next_poll_at="2999-01-01T00:00Z")  # we are late
    time.sleep(0.3)  # done after 0.1 s, gone 0.02 s later
    make_due(job)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "no longer has this video" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]


def test_the_video_is_ours_once_delivered_even_after_the_provider_deletes_it(
    personas, stability, image_upload, client_for
):
    stability.plan_next(run_seconds=5, retention_seconds=20)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: settled(job)) and job.state == S.SUCCEEDED
    time.sleep(0.5)  # the provider's copy is gone now
    page = client_for(personas.member).get(f"/t/{personas.team.slug}/jobs/{job.pk}/files/video/")
    assert page.status_code == 200 and b"".join(page.streaming_content)[4:8] == b"ftyp"


@pytest.mark.parametrize("answer", ["garbage", "drop"])
def test_a_lost_answer_is_never_sent_again_and_is_refunded_and_flagged(
    personas, stability, image_upload, answer
):
    stability.plan_next(submit=answer)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "could not confirm" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN
    assert len(stability.generations) == 1 and job.submit_attempts == 1


def test_a_changed_key_fails_running_jobs_instead_of_polling_with_another_key(
    personas, stability, image_upload, settings
):
    stability.plan_next(run_seconds=600)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    assert run_engine_until(lambda: Job.objects.get(pk=job.pk).state == S.RUNNING)
    settings.STABILITY_API_KEY = "sk-another-key"
    make_due(job)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "key changed" in job.error
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.KEY_MISMATCH


def test_poll_spacing_is_kept_for_many_jobs_at_once(personas, stability, image_upload):
    stability.default_plan.run_seconds = 60  # about six polls each
    jobs = [
        submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
        for _ in range(8)
    ]
    assert run_engine_until(lambda: all(settled(job) for job in jobs), timeout=30)
    assert {job.state for job in jobs} == {S.SUCCEEDED}
    assert stability.violations == []
    assert all(gap >= 10 for gaps in stability.poll_gaps().values() for gap in gaps)


def test_a_worker_killed_between_sending_and_recording_submits_once_and_settles_once(
    personas, stability, image_upload, media_root, settings, monkeypatch
):
    """A real `run_engine` process is SIGKILLed while its submission is in flight."""
    stability.plan_next(submit="slow", slow_seconds=3)
    monkeypatch.setattr("studio.jobs.submit.enqueue_job", lambda job: None)  # the engine's job
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    env = os.environ | {
        "DATABASE_URL": worker.test_database_url(),
        "MEDIA_ROOT": str(media_root),
        "STABILITY_API_KEY": STABILITY_KEY,
        "STABILITY_BASE_URL": stability.base_url,
        "PROVIDER_TIME_SCALE": str(settings.PROVIDER_TIME_SCALE),
        "DEBUG": "true",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_engine", "--threads", "1"],
        cwd=worker.ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 20
        while not stability.generations and time.monotonic() < give_up:
            time.sleep(0.05)  # until the provider has the request
        assert stability.generations, "the engine never submitted"
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and not job.provider_job_id  # the answer never got home
    make_due(job)  # its lease runs out
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and job.submit_attempts == 1
    assert len(stability.generations) == 1  # sent once, ever
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert ProviderIncident.objects.filter(job=job, kind=IncidentKind.OUTCOME_UNKNOWN).exists()
