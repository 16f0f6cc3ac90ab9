"""The local engine driven by the job engine, on real renders: claims, lost tasks, dead workers."""

from datetime import timedelta

from django.utils import timezone

from studio import tasks
from studio.jobs import engine
from studio.jobs.states import transition
from studio.models import Job, JobState
from tests.factories import make_job

S = JobState


def due_now(job):
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())


def test_the_engine_submits_a_queued_job_and_it_renders(personas):
    job = make_job(personas.team, personas.member)
    due_now(job)
    engine.tick()
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.video and job.submit_attempts == 1


def test_a_render_task_delivered_twice_renders_once(personas):
    job = make_job(personas.team, personas.member)
    due_now(job)
    engine.tick()
    job.refresh_from_db()
    first_video = job.video.name
    tasks.render_local(str(job.pk))  # django-q2 hands the same task out again
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.submit_attempts == 1 and job.video.name == first_video


def test_a_render_task_for_a_deleted_row_is_ignored(db):
    tasks.render_local("7f1c7a53-5f0c-4a4e-9c8f-1d1f0e3c2b11")  # no exception, nothing to do


def test_a_job_whose_task_was_lost_is_submitted_by_the_engine(personas, monkeypatch):
    """Enqueueing failed after the commit: the row is the truth, and the engine finds it."""
    job = make_job(personas.team, personas.member)  # created, reserved, never enqueued
    due_now(job)
    tasks.sweep()  # the periodic safety net ticks the engine too
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED


def test_a_lost_render_task_is_handed_out_again_after_its_lease(personas, monkeypatch):
    job = make_job(personas.team, personas.member)
    due_now(job)
    sent = []
    monkeypatch.setattr("studio.providers.local.async_task", lambda *a, **k: sent.append(a))
    engine.tick()  # submitted, but the broker drops the render task
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and len(sent) == 1
    engine.tick()  # within its lease: nothing happens
    assert len(sent) == 1
    monkeypatch.undo()
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())  # the lease ran out
    engine.tick()  # back to queued (nothing was spent) ...
    engine.tick()  # ... and submitted again
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.submit_attempts == 2


def test_a_job_canceled_mid_render_stops_and_leaves_no_files(personas, media_root, monkeypatch):
    job = make_job(
        personas.team,
        personas.member,
        params={
            "duration": 4,
            "resolution": "480p",
            "aspect": "source",
            "fps": 24,
            "motion": "zoom_in",
            "strength": 5,
        },
    )
    due_now(job)
    import studio.providers.local as local

    real_report = local._report_progress

    def cancel_halfway(job_, done, total):
        real_report(job_, done, total)
        if done >= total // 2:  # someone cancels (or the deadline passes) while it renders
            transition(job_.pk, S.RUNNING, S.CANCELED)

    monkeypatch.setattr(local, "_report_progress", cancel_halfway)
    engine.tick()
    job.refresh_from_db()
    assert job.state == S.CANCELED and not job.video
    assert not list(media_root.glob("videos/**/*.mp4"))


def test_a_render_failure_fails_the_job_with_a_readable_reason(personas):
    job = make_job(personas.team, personas.member)
    job.input_image.save("broken.png", __import__("io").BytesIO(b"not an image"), save=True)
    due_now(job)
    engine.tick()
    job.refresh_from_db()
    assert job.state == S.FAILED
    assert job.error.startswith("The local engine could not make this video: ")
    assert str(job.pk) in job.error and "/" not in job.error.split(": ", 1)[1].split(" (job")[0]


def test_the_time_limit_covers_storing_the_files(personas, settings, monkeypatch, media_root):
    job = make_job(personas.team, personas.member)
    due_now(job)
    import studio.providers.local as local

    real_store, real_clock = local._store, local.time.monotonic

    def slow_store(path, name):  # the render finished in time; storing runs past the limit
        monkeypatch.setattr(local.time, "monotonic", lambda: real_clock() + 10_000)
        return real_store(path, name)

    monkeypatch.setattr(local, "_store", slow_store)
    engine.tick()
    job.refresh_from_db()
    assert job.state == S.FAILED and "took longer than" in job.error
    assert not list(media_root.glob("videos/**/*.mp4"))


def test_a_render_whose_worker_died_fails_and_overdue_jobs_expire(personas, settings):
    now = timezone.now()
    dead = make_job(personas.team, personas.member, state=S.RUNNING, next_poll_at=now)
    alive = make_job(
        personas.team, personas.member, state=S.RUNNING, next_poll_at=now + timedelta(minutes=2)
    )
    overdue = make_job(
        personas.team, personas.member, deadline_at=now - timedelta(1), next_poll_at=None
    )
    tasks.sweep()
    dead.refresh_from_db(), alive.refresh_from_db(), overdue.refresh_from_db()
    assert dead.state == S.FAILED and "worker stopped" in dead.error
    assert alive.state == S.RUNNING
    assert overdue.state == S.EXPIRED


def test_the_sweep_is_scheduled_by_a_migration(db):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="studio.sweep")
    assert schedule.func == "studio.tasks.sweep" and schedule.schedule_type == Schedule.MINUTES
