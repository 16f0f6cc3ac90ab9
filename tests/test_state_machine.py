import pytest

from studio.jobs.states import ALLOWED, IllegalTransition, cancel, expire_overdue, transition
from studio.models import Job, JobState
from studio.models.jobs import TERMINAL_STATES
from tests.factories import make_job
from tests.racing import race

S = JobState


def test_a_job_walks_the_happy_path_and_records_each_time(personas):
    job = make_job(personas.team, personas.member)
    assert transition(job, S.QUEUED, S.SUBMITTING)
    assert transition(job, S.SUBMITTING, S.RUNNING, provider_job_id="p-1")
    assert transition(job, S.RUNNING, S.SUCCEEDED)
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.provider_job_id == "p-1" and job.progress == 100
    assert job.submitting_at <= job.running_at <= job.finished_at


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATES))
def test_nothing_leaves_a_terminal_state(personas, terminal):
    job = make_job(personas.team, personas.member, state=terminal)
    for target in S.values:
        with pytest.raises(IllegalTransition):
            transition(job, terminal, target)
    # Even a caller that lies about the current state cannot move it.
    for source, targets in ALLOWED.items():
        for target in targets:
            assert not transition(job, source, target)
    job.refresh_from_db()
    assert job.state == terminal


def test_a_stale_expectation_loses(personas):
    job = make_job(personas.team, personas.member)
    assert transition(job.pk, S.QUEUED, S.SUBMITTING)
    assert not transition(job.pk, S.QUEUED, S.CANCELED)  # it has moved on
    assert Job.objects.get(pk=job.pk).state == S.SUBMITTING


def test_backwards_moves_are_illegal():
    with pytest.raises(IllegalTransition):
        transition("00000000-0000-0000-0000-000000000000", S.RUNNING, S.QUEUED)


def test_a_queued_job_can_be_canceled_but_not_one_a_provider_is_making(personas):
    queued = make_job(personas.team, personas.member)
    running = make_job(personas.team, personas.member, state=S.RUNNING, provider="stability")
    assert cancel(queued) and not cancel(running)
    assert Job.objects.get(pk=queued.pk).state == S.CANCELED


def test_overdue_jobs_expire_with_a_reason(personas):
    from datetime import timedelta

    from django.utils import timezone

    past = timezone.now() - timedelta(seconds=1)
    late = make_job(personas.team, personas.member, state=S.RUNNING, deadline_at=past)
    fine = make_job(
        personas.team,
        personas.member,
        state=S.RUNNING,
        deadline_at=timezone.now() + timedelta(hours=1),
    )
    done = make_job(personas.team, personas.member, state=S.SUCCEEDED, deadline_at=past)
    assert expire_overdue() == 1
    late.refresh_from_db(), fine.refresh_from_db(), done.refresh_from_db()
    assert late.state == S.EXPIRED and "expired" in late.error
    assert fine.state == S.RUNNING and done.state == S.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_settlements_settle_exactly_once(personas):
    """A poll, a webhook and a cancel racing on one running job: exactly one of them wins."""
    jobs = [make_job(personas.team, personas.member, state=S.RUNNING) for _ in range(10)]
    targets = [S.SUCCEEDED, S.FAILED, S.CANCELED, S.EXPIRED] * 2
    for job in jobs:
        results = race([lambda t=t, j=job: transition(j.pk, S.RUNNING, t) for t in targets])
        assert results.count(True) == 1
        assert Job.objects.get(pk=job.pk).state == targets[results.index(True)]
