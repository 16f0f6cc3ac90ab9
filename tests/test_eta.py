"""The job page's ETA for remote jobs: the provider's hint, recent jobs' median, a typical run."""

import re
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.utils import timezone

from studio.jobs.engine import WAITING_FOR_SLOT
from studio.jobs.eta import estimate
from studio.providers.stability import Stability
from tests.factories import make_job

pytestmark = pytest.mark.django_db
SVD = "stable-video-diffusion"


@pytest.fixture(autouse=True)
def fresh_cache():
    caches["local"].clear()  # the medians are cached across requests, and so across tests
    yield
    caches["local"].clear()


def remote_job(personas, state="running", provider="stability", model=SVD, **fields):
    return make_job(
        personas.team, personas.member, state=state, provider=provider, model=model, **fields
    )


def past_runs(personas, *seconds, model=SVD, provider="stability"):
    """Succeeded jobs that each ran so many seconds."""
    end = timezone.now() - timedelta(minutes=5)
    for run in seconds:
        start = end - timedelta(seconds=run)
        remote_job(
            personas, "succeeded", provider=provider, model=model, running_at=start, finished_at=end
        )


def test_the_providers_hint_wins(personas):
    past_runs(personas, 30, 30, 30)
    now = timezone.now()
    job = remote_job(
        personas, running_at=now - timedelta(seconds=60), eta_at=now + timedelta(seconds=120)
    )
    eta = estimate(job, now)
    assert (eta.source, eta.at, eta.seconds_left) == ("provider", now + timedelta(seconds=120), 120)
    assert eta.progress == 33  # 60 s of 180 s


def test_the_providers_own_progress_is_kept(personas):
    now = timezone.now()
    job = remote_job(
        personas,
        running_at=now - timedelta(seconds=60),
        eta_at=now + timedelta(seconds=60),
        progress=70,
    )
    assert estimate(job, now).progress == 70


def test_without_a_hint_the_median_of_recent_jobs_of_that_provider_and_model(personas):
    past_runs(personas, 40, 60, 200)
    past_runs(personas, 1000, 1000, 1000, 1000, provider="modelslab", model="img2video")
    remote_job(personas, "failed", running_at=timezone.now() - timedelta(hours=1))  # not a success
    now = timezone.now()
    job = remote_job(personas, running_at=now - timedelta(seconds=15))
    eta = estimate(job, now)
    assert eta.source == "recent jobs"
    assert eta.at == job.running_at + timedelta(seconds=60)
    assert (eta.seconds_left, eta.progress) == (45, 25)


def test_only_the_last_50_successes_count(personas):
    past_runs(personas, *[10] * 50)
    end = timezone.now() - timedelta(days=1)  # older than all of them
    for _ in range(60):
        remote_job(personas, "succeeded", running_at=end - timedelta(seconds=500), finished_at=end)
    now = timezone.now()
    job = remote_job(personas, running_at=now)
    assert estimate(job, now).at == now + timedelta(seconds=10)


def test_with_no_history_the_providers_typical_run_time(personas):
    now = timezone.now()
    job = remote_job(personas, running_at=now - timedelta(seconds=45))
    eta = estimate(job, now)
    assert (eta.source, eta.seconds_left, eta.progress) == ("typical", 45, 50)  # Stability: 90 s


def test_a_job_not_yet_running_counts_its_run_from_now(personas):
    now = timezone.now()
    job = remote_job(personas, "queued", provider="modelslab", model="img2video")
    eta = estimate(job, now)
    assert (eta.source, eta.at, eta.progress) == ("typical", now + timedelta(seconds=60), 0)


def test_overdue_is_zero_seconds_left_and_progress_stops_at_99(personas):
    now = timezone.now()
    job = remote_job(personas, running_at=now - timedelta(minutes=10))
    eta = estimate(job, now)
    assert (eta.seconds_left, eta.progress) == (0, 99)


def test_no_estimate_without_any_run_time(personas, monkeypatch):
    monkeypatch.setattr(Stability, "estimated_run", lambda self, job: None)
    assert estimate(remote_job(personas)) is None


def test_no_estimate_for_the_local_engine_or_finished_jobs(personas):
    local = make_job(personas.team, personas.member, state="running", progress=40)
    assert estimate(local) is None
    assert estimate(remote_job(personas, "succeeded")) is None
    assert estimate(remote_job(personas, "failed", eta_at=timezone.now())) is None


def test_the_median_is_cached_for_a_minute(
    personas, django_assert_num_queries, django_assert_max_num_queries
):
    past_runs(personas, 60)
    job = remote_job(personas, running_at=timezone.now())
    with django_assert_num_queries(1):
        first = estimate(job)
    past_runs(personas, 600, 600)  # not seen until the cached median expires
    with django_assert_num_queries(0):
        second = estimate(job)
    assert first.source == second.source == "recent jobs"
    assert second.at == job.running_at + timedelta(seconds=60)
    caches["local"].clear()
    with django_assert_num_queries(1):
        assert estimate(job).at == job.running_at + timedelta(seconds=600)


def test_having_no_history_is_cached_too(personas, django_assert_num_queries):
    job = remote_job(personas, running_at=timezone.now())
    estimate(job)
    with django_assert_num_queries(0):
        assert estimate(job).source == "typical"


def test_a_provider_hint_needs_no_query(personas, django_assert_num_queries):
    now = timezone.now()
    job = remote_job(personas, running_at=now, eta_at=now + timedelta(minutes=1))
    with django_assert_num_queries(0):
        assert estimate(job).source == "provider"


# --- On the job page ------------------------------------------------------------------------
def status_of(client, personas, job):
    url = f"/t/{personas.team.slug}/jobs/{job.pk}/status/"
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200
    return response.content.decode()


def test_the_status_partial_shows_minutes_left_and_the_estimated_progress(personas, client_for):
    now = timezone.now()
    job = remote_job(
        personas, running_at=now - timedelta(minutes=10), eta_at=now + timedelta(minutes=10)
    )
    body = status_of(client_for(personas.member), personas, job)
    assert "About 10 min left" in body
    assert '<progress max="100" value="50" data-progress="0"' in body
    assert "the provider's estimate" in body


def test_the_status_partial_shows_seconds_left_from_recent_jobs(personas, client_for):
    past_runs(personas, 600)
    job = remote_job(personas, running_at=timezone.now() - timedelta(seconds=570))
    body = status_of(client_for(personas.member), personas, job)
    assert re.search(r"About (29|30) s left", body)
    assert "estimated from recent jobs" in body


def test_the_status_partial_says_any_moment_now_when_overdue(personas, client_for):
    job = remote_job(personas, running_at=timezone.now() - timedelta(hours=1))
    body = status_of(client_for(personas.member), personas, job)
    assert "Any moment now" in body and 'value="99"' in body


def test_the_status_partial_shows_the_status_note(personas, client_for):
    job = remote_job(
        personas,
        "queued",
        provider="modelslab",
        model="img2video_ultra",
        status_note=WAITING_FOR_SLOT,
    )
    client = client_for(personas.member)
    body = status_of(client, personas, job)
    assert "Waiting for a provider slot." in body
    assert "About 3 min left" in body  # not running yet: img2video_ultra's typical 180 s from now
    page = client.get(f"/t/{personas.team.slug}/jobs/{job.pk}/").content.decode()
    assert "Waiting for a provider slot." in page


def test_a_local_job_keeps_its_frame_progress_and_shows_no_eta(personas, client_for):
    job = make_job(
        personas.team,
        personas.member,
        state="running",
        progress=40,
        last_response={"frames_done": 48, "frames_total": 120},
    )
    body = status_of(client_for(personas.member), personas, job)
    assert 'value="40"' in body and "48 / 120 frames" in body
    assert "left" not in body and "Any moment now" not in body


def test_polling_a_remote_jobs_status_writes_nothing_and_stays_cheap(personas, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    job = remote_job(personas, running_at=now - timedelta(seconds=30))
    client = client_for(personas.member)
    status_of(client, personas, job)  # the first visit remembers the team in the session
    with CaptureQueriesContext(connection) as queries:
        status_of(client, personas, job)
    writes = [q["sql"] for q in queries if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes == []
    assert len(queries) <= 12  # issue 9 brings this to 4
