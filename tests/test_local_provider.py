"""The local provider's execute flow and the periodic sweep, on real renders."""

from datetime import timedelta

from django.utils import timezone

from studio import tasks
from studio.jobs.states import transition
from studio.models import JobState
from studio.providers.local import LocalEngine
from tests.factories import make_job

S = JobState


def test_a_task_delivered_twice_renders_once(personas):
    job = make_job(personas.team, personas.member)
    tasks.run_job(str(job.pk))
    job.refresh_from_db()
    first_video = job.video.name
    tasks.run_job(str(job.pk))  # django-q2 hands the same task out again
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.submit_attempts == 1 and job.video.name == first_video


def test_a_job_for_a_deleted_row_is_ignored(db):
    tasks.run_job("7f1c7a53-5f0c-4a4e-9c8f-1d1f0e3c2b11")  # no exception, nothing to do


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
    import studio.providers.local as local

    real_report = local._report_progress

    def cancel_halfway(job_, done, total):
        real_report(job_, done, total)
        if done >= total // 2:  # someone cancels (or the deadline passes) while it renders
            transition(job_.pk, S.RUNNING, S.CANCELED)

    monkeypatch.setattr(local, "_report_progress", cancel_halfway)
    tasks.run_job(str(job.pk))
    job.refresh_from_db()
    assert job.state == S.CANCELED and not job.video
    assert not list(media_root.glob("videos/**/*.mp4"))


def test_a_render_failure_fails_the_job_with_a_readable_reason(personas):
    job = make_job(personas.team, personas.member)
    job.input_image.save("broken.png", __import__("io").BytesIO(b"not an image"), save=True)
    tasks.run_job(str(job.pk))
    job.refresh_from_db()
    assert job.state == S.FAILED
    assert job.error.startswith("The local engine could not make this video: ")
    assert str(job.pk) in job.error and "/" not in job.error.split(": ", 1)[1].split(" (job")[0]


def test_the_sweep_fails_jobs_whose_worker_died_and_expires_overdue_ones(personas, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.TASK_TIME_LIMIT + 120)
    dead = make_job(personas.team, personas.member, state=S.RUNNING, running_at=long_ago)
    alive = make_job(personas.team, personas.member, state=S.RUNNING, running_at=timezone.now())
    overdue = make_job(personas.team, personas.member, deadline_at=timezone.now() - timedelta(1))
    tasks.sweep()
    dead.refresh_from_db(), alive.refresh_from_db(), overdue.refresh_from_db()
    assert dead.state == S.FAILED and "worker stopped" in dead.error
    assert alive.state == S.RUNNING
    assert overdue.state == S.EXPIRED


def test_the_sweep_is_scheduled_by_a_migration(db):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="studio.sweep")
    assert schedule.func == "studio.tasks.sweep" and schedule.schedule_type == Schedule.MINUTES


def test_the_local_engine_declares_a_deadline_longer_than_a_render(settings):
    assert LocalEngine.deadline.total_seconds() > settings.TASK_TIME_LIMIT
