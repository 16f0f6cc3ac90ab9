"""Shared by the provider benchmarks (bench/provider_*.py): not a benchmark itself.

- a throw-away PostgreSQL database per benchmark, made and dropped on DATABASE_URL's server
  (default postgres://postgres@127.0.0.1:5432/postgres);
- Django configured in the benchmark's own process (seeding, measuring);
- thousands of RUNNING provider jobs seeded with bulk inserts, each with its credit reservation,
  as submit_job + the engine's submission would have left them;
- the job engine run as its own process (`python bench/_engine_setup.py engine ...`), which is
  `manage.py run_engine` plus optional benchmark patches (see run_engine_process below).

Run without arguments (as bin/bench does for every bench/*.py) it only says what it is.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PYTHON = sys.executable
_media_folders: dict[str, list[str]] = {}


# --- The benchmark's own database ---------------------------------------------------------
def _admin_url() -> str:
    return f"{SERVER.rsplit('/', 1)[0]}/postgres"


def recreate_database(name: str) -> str:
    if not SERVER.startswith("postgres"):
        sys.exit(f"{name}: needs PostgreSQL; set DATABASE_URL=postgres://...")
    with psycopg.connect(_admin_url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    return f"{SERVER.rsplit('/', 1)[0]}/{name}"


def drop_database(name: str) -> None:
    """Drop the benchmark's database, and the media folder configure() made for it."""
    with psycopg.connect(_admin_url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    for folder in _media_folders.pop(name, []):
        shutil.rmtree(folder, ignore_errors=True)


def tear_down(database: str, sim, *processes) -> None:
    """Stop the processes and the simulator, then drop the benchmark's database."""
    for process in processes:
        stop(process)
    sim.stop()
    from django.db import connections

    connections.close_all()
    drop_database(database)


def configure_stability(database: str, sim, scale: float, threads: int | None) -> dict[str, str]:
    """configure() for a Stability run against `sim`, with the engine's thread count."""
    more = {"ENGINE_THREADS": threads} if threads else {}
    return configure(
        database,
        STABILITY_API_KEY=sim.api_keys[0],
        STABILITY_BASE_URL=sim.base_url,
        PROVIDER_TIME_SCALE=scale,
        **more,
    )


def configure(database: str, **settings: str) -> dict[str, str]:
    """Make a fresh database, point this process's Django at it (plus `settings`, e.g.
    STABILITY_BASE_URL), migrate, and return the environment for child processes."""
    env = dict(os.environ)
    media = tempfile.mkdtemp(prefix=f"{database}-media-")
    _media_folders.setdefault(database, []).append(media)
    env.update(
        DATABASE_URL=recreate_database(database),
        LOG_LEVEL="WARNING",
        MEDIA_ROOT=media,
        DJANGO_SETTINGS_MODULE="project.settings",
        PYTHONPATH=str(ROOT),
        WELCOME_CREDITS="0",
    )
    env.update({k: str(v) for k, v in settings.items()})
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


# --- Seeding ------------------------------------------------------------------------------
def make_member(credits: int, email: str = "bench@example.test"):
    """A user with their personal team holding `credits`; returns the membership."""
    from studio.billing import ledger
    from studio.models import User

    user = User.objects.create_user(email, "bench-password-123")
    membership = user.memberships.get()
    ledger.grant(membership.team, credits, actor=None, reason="Benchmark budget")
    return membership


def seed_running_jobs(membership, provider, model: str, provider_job_ids, *, price: int = 20):
    """RUNNING jobs (one per provider id) with their reservations, not yet due (next_poll_at is
    empty until schedule() sets it). Returns the Job objects, in the order of the ids."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from studio.models import CreditAccount, Job, LedgerEntry

    now = timezone.now()
    deadline = now + provider.figure(provider.deadline)
    team, user = membership.team, membership.user
    jobs = [
        Job(
            team=team,
            creator=user,
            provider=provider.key,
            model=model,
            params={},
            input_image="inputs/bench.png",  # never read: the job is past its submission
            input_width=1024,
            input_height=576,
            price_quoted=price,
            state="running",
            provider_job_id=provider_id,
            key_fingerprint=provider.key_fingerprint(),
            submit_attempts=1,
            next_poll_at=None,
            deadline_at=deadline,
            submitting_at=now,
            running_at=now,
            webhook_token=secrets.token_urlsafe(32),
        )
        for provider_id in provider_job_ids
    ]
    with transaction.atomic():
        Job.objects.bulk_create(jobs, batch_size=1000)
        LedgerEntry.objects.bulk_create(
            [
                LedgerEntry(
                    team=team,
                    kind="reserve",
                    amount=price,
                    job=job,
                    member=user,
                    provider=provider.key,
                    actor=user,
                )
                for job in jobs
            ],
            batch_size=1000,
        )
        CreditAccount.objects.filter(team=team).update(held=F("held") + price * len(jobs))
    return jobs


def schedule(jobs, due_times: list[datetime]) -> None:
    """Set each job's next_poll_at (one UPDATE per thousand jobs)."""
    from django.db import connection

    from studio.models import Job

    table = Job._meta.db_table
    pairs = list(zip(jobs, due_times, strict=True))
    for start in range(0, len(pairs), 1000):
        chunk = pairs[start : start + 1000]
        values = ", ".join(["(%s::uuid, %s::timestamptz)"] * len(chunk))
        params = [p for job, due in chunk for p in (str(job.pk), due)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS j SET next_poll_at = v.due "
                f"FROM (VALUES {values}) AS v(id, due) WHERE j.id = v.id",
                params,
            )


def add_stability_generation(sim, gid: str, created: float, run_seconds: float):
    """Put a generation straight into a StabilitySimulator's table, as if its upload had arrived
    at `created` (time.monotonic()): thousands of uploads would take minutes and measure nothing
    here. Returns the simulator's Generation."""
    from tests.simulators import Generation, Plan

    plan = Plan(run_seconds=run_seconds)
    done_at = created + sim.scaled(run_seconds)
    generation = Generation(
        id=gid,
        key=sim.api_keys[0],
        plan=plan,
        created=created,
        done_at=done_at,
        expires_at=done_at + sim.scaled(plan.retention_seconds),
        seed=1,
        image_size=(1024, 576),
        image_format="PNG",
        params={},
        client_headers={},
    )
    with sim.lock:
        sim.generations[generation.id] = generation
    return generation


class Clock:
    """Converts between the simulators' time.monotonic() and the engine's wall clock."""

    def __init__(self):
        self.wall0, self.mono0 = time.time(), time.monotonic()

    def wall(self, mono: float) -> datetime:
        from datetime import UTC

        return datetime.fromtimestamp(self.wall0 + (mono - self.mono0), UTC)

    def mono(self, wall: datetime) -> float:
        return self.mono0 + (wall.timestamp() - self.wall0)


# --- Processes ----------------------------------------------------------------------------
def start_engine(env: dict[str, str], *flags: str) -> subprocess.Popen:
    """The engine loop as its own process; returns once it is about to run its loop."""
    # As in production: DEBUG off (no query log kept for every statement). A caller that runs
    # other processes too (web, worker) sets its own key: task signatures must agree.
    production = {"DEBUG": "false", "SECRET_KEY": "bench-only-" + "x" * 40, "ALLOWED_HOSTS": "*"}
    production |= {k: env[k] for k in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS") if k in env}
    process = subprocess.Popen(
        [PYTHON, str(Path(__file__).resolve()), "engine", *flags],
        env=env | production,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    if "engine ready" not in line:
        stop(process)
        sys.exit(f"the engine process did not start (it said {line!r})")
    # Anything else it prints goes to our stderr, so a full pipe never blocks it and our own last
    # line stays the figures.
    threading.Thread(target=_forward, args=(process.stdout,), daemon=True).start()
    return process


def _forward(stream) -> None:
    for line in stream:
        sys.stderr.write(line)


def stop(process: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM (the engine finishes its in-flight calls), then SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a live process has used so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


# --- The engine process -------------------------------------------------------------------
def run_engine_process(flags: list[str]) -> None:
    """`manage.py run_engine`, with these benchmark-only patches when asked:

    --unlimited-rate: the Stability account's token bucket allows 1,000,000 requests per 10 s, so
        the capacity benchmark measures the engine, not the rate limit (its simulator has none).
    --no-batch-fill: a batched poll (AKOOL) takes only the jobs already due, none of those about
        to fall due, so bench/provider_batch.py can show what riding along is worth.
    --stub-collect: copying a finished output (steps.collect_later, normally a django-q2 task
        `studio.tasks.collect_output`, run by a separate worker) is replaced by marking the job
        succeeded at once (which captures its credits). The benchmarks that use it measure
        polling; the copy runs on other machines' workers in production.
    """
    import django

    django.setup()
    from django.core.management import call_command

    from studio.jobs import steps
    from studio.jobs.states import transition
    from studio.models import JobState
    from studio.providers import PROVIDERS

    if "--no-batch-fill" in flags:  # batched polls take only what is due (for comparison)
        from studio.jobs import engine

        engine.BATCH_FILL_AHEAD = 0.0
    if "--unlimited-rate" in flags:  # "a simulator with no account limit": none on our side
        PROVIDERS["stability"].rate_limit = None
    if "--stub-collect" in flags:

        def collect_now(job_id) -> None:
            transition(job_id, JobState.RUNNING, JobState.SUCCEEDED)

        steps.collect_later = collect_now
    print("engine ready", flush=True)
    call_command("run_engine")


if __name__ == "__main__":
    if sys.argv[1:2] == ["engine"]:
        run_engine_process(sys.argv[2:])
    else:
        print("bench/_engine_setup.py: helpers for bench/provider_*.py; nothing to measure here")
