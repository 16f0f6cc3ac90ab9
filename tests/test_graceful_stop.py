"""Stopping real worker processes while they hold work: `qcluster` mid-render (stopped the way
Docker does, SIGTERM to its main process, and the way honcho does, SIGTERM to its whole process
group through bin/run-gently), `run_engine` mid provider call, and bin/dev's Ctrl-C. Each must
finish or hand back what it holds, exit on its own (never killed) within its bound, and the job
must end finished with its credits settled exactly once."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from studio.jobs import engine
from studio.models import Job, JobState
from tests import worker
from tests.factories import make_job
from tests.providers import STABILITY_KEY, ledger_kinds, make_due, run_engine_until, settled, submit
from tests.test_readme_api import free_port

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
S = JobState
# A render of a few seconds here, so the stop comes while it is in progress.
SLOW_RENDER = {
    "duration": 6,
    "resolution": "720p",
    "aspect": "source",
    "fps": 24,
    "motion": "ken_burns",
    "strength": 5,
}
PYTHON = sys.executable


def environment(media_root, **extra: str) -> dict[str, str]:
    env = os.environ | {
        "DATABASE_URL": worker.test_database_url(),
        "MEDIA_ROOT": str(media_root),
        "DEBUG": "true",
        "Q_WORKERS": "1",
        "ENGINE_THREADS": "2",
    }
    env.pop("REDIS_URL", None)  # the ORM broker, in the test database
    return env | extra


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=worker.ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a group of its own, as under honcho or in a container
    )


def finish(process: subprocess.Popen, within: float) -> tuple[int, str, float]:
    """Wait for the process to exit on its own; (exit code, output, seconds it took)."""
    started = time.monotonic()
    try:
        output, _ = process.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        for pid in re.findall(r"started \(pid=(\d+)\)", output):  # honcho's own processes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
        pytest.fail(f"still running {within} s after it was asked to stop:\n{output}")
    return process.returncode, output, time.monotonic() - started


def group_is_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    os.killpg(pgid, signal.SIGKILL)  # do not leave it behind for the next test
    return False


def render_queued(personas, monkeypatch) -> Job:
    """A local job claimed by the engine, its render task waiting in the ORM broker's queue."""
    monkeypatch.setattr(Conf, "SYNC", False)  # this process enqueues; the worker renders
    job = make_job(personas.team, personas.member, params=SLOW_RENDER)
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())
    assert engine.tick() == 1
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and OrmQ.objects.count() == 1
    return job


def wait_until_rendering(job: Job, process: subprocess.Popen, within: float = 60.0) -> None:
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        job.refresh_from_db()
        if job.state == S.RUNNING and job.progress > 0:
            return
        assert job.state in (S.SUBMITTING, S.RUNNING), job.state
        if process.poll() is not None:
            pytest.fail(f"the worker exited:\n{process.communicate()[0]}")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    pytest.fail(f"no render started:\n{process.communicate()[0]}")


def assert_rendered_and_charged_once(job: Job) -> None:
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED and job.video, (job.state, job.error)
    assert ledger_kinds(job) == ["reserve", "capture"]
    # The broker acknowledged the task: nothing will hand it out again.
    assert OrmQ.objects.count() == 0


@pytest.mark.parametrize("stopped_like", ["docker", "honcho"])
def test_a_worker_stopped_mid_render_finishes_it_and_exits_by_itself(
    personas, media_root, monkeypatch, stopped_like
):
    job = render_queued(personas, monkeypatch)
    env = environment(media_root)
    qcluster = [PYTHON, "manage.py", "qcluster"]
    if stopped_like == "docker":  # `docker stop`: SIGTERM to the main process only
        process = start(qcluster, env)
        wait_until_rendering(job, process)
        process.send_signal(signal.SIGTERM)
    else:  # honcho: SIGTERM to the process group of the Procfile line, as in Procfile.dev
        process = start([PYTHON, "bin/run-gently", *qcluster], env)
        wait_until_rendering(job, process)
        os.killpg(process.pid, signal.SIGTERM)
    code, output, seconds = finish(process, within=60)
    assert code == 0, output
    assert seconds < 30, output  # the render's remaining seconds and the cluster's own stop
    assert "has stopped" in output
    assert group_is_gone(process.pid)
    assert_rendered_and_charged_once(job)


SVD = {"model": "stable-video-diffusion"}


def engine_with_stability(stability, media_root, settings, **extra: str) -> subprocess.Popen:
    env = environment(
        media_root,
        STABILITY_API_KEY=STABILITY_KEY,
        STABILITY_BASE_URL=stability.base_url,
        PROVIDER_TIME_SCALE=str(settings.PROVIDER_TIME_SCALE),
        **extra,
    )
    process = start([PYTHON, "manage.py", "run_engine", "--threads", "1"], env)
    give_up = time.monotonic() + 30
    while not stability.generations and time.monotonic() < give_up:
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)  # until the provider has the request
    assert stability.generations, "the engine never submitted"
    return process


def test_the_engine_stopped_mid_call_lets_it_finish_and_exits_by_itself(
    personas, stability, image_upload, media_root, settings, monkeypatch
):
    stability.plan_next(submit="slow", slow_seconds=3)
    monkeypatch.setattr("studio.jobs.submit.enqueue_job", lambda job: None)  # the engine's job
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    process = engine_with_stability(stability, media_root, settings, ENGINE_STOP_SECONDS="20")
    process.send_signal(signal.SIGTERM)
    code, output, seconds = finish(process, within=30)
    assert code == 0, output
    assert seconds < 10, output  # the 3 s answer, not the 20 s bound
    assert group_is_gone(process.pid)
    job.refresh_from_db()
    assert job.state == S.RUNNING and job.provider_job_id  # the answer was recorded
    assert run_engine_until(lambda: settled(job))  # another engine takes it from there
    assert job.state == S.SUCCEEDED and ledger_kinds(job) == ["reserve", "capture"]
    assert len(stability.generations) == 1  # sent once, ever


def test_the_engine_gives_up_on_a_hung_call_within_its_bound_and_the_lease_hands_it_on(
    personas, stability, image_upload, media_root, settings, monkeypatch
):
    stability.plan_next(submit="slow", slow_seconds=8)
    monkeypatch.setattr("studio.jobs.submit.enqueue_job", lambda job: None)
    job = submit(personas.membership(personas.member), image_upload(), "stability", **SVD)
    process = engine_with_stability(stability, media_root, settings, ENGINE_STOP_SECONDS="1")
    process.send_signal(signal.SIGTERM)
    code, output, seconds = finish(process, within=30)
    assert code == 1 and "1 provider calls and 0 webhook sends in flight" in output, output
    assert seconds < 5, output  # ENGINE_STOP_SECONDS, not the 8 s answer
    assert group_is_gone(process.pid)
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and not job.provider_job_id  # held under its lease
    make_due(job)  # its lease runs out
    assert run_engine_until(lambda: settled(job))
    assert ledger_kinds(job) in (["reserve", "capture"], ["reserve", "release"])
    assert len(stability.generations) == 1  # never sent twice


def test_bin_dev_ctrl_c_stops_every_process_gently_and_a_render_in_progress_finishes(
    personas, media_root, monkeypatch
):
    """Procfile.dev under bin/start-procfile, as bin/dev runs it; Ctrl-C is SIGINT to honcho."""
    job = render_queued(personas, monkeypatch)
    env = environment(media_root, WEB_PORT=str(free_port()))
    process = start([PYTHON, "bin/start-procfile", "Procfile.dev"], env)
    wait_until_rendering(job, process)
    process.send_signal(signal.SIGINT)
    code, output, seconds = finish(process, within=60)
    assert "SIGKILL" not in output, output
    assert seconds < 30, output
    assert code == 130, output  # honcho's answer to SIGINT
    for name in ("worker", "engine"):
        assert f"{name}.1 stopped (rc=0)" in output, output
    assert "web.1 stopped" in output
    assert group_is_gone(process.pid)
    assert_rendered_and_charged_once(job)
