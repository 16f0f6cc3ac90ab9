"""Scale-out: several web and worker processes on one database, one of the workers killed mid-run.

    .venv/bin/python bench/scale.py [--jobs 300] [--kills 1] [--timeout 900]

Everything runs for real, each in its own process, on the benchmark's own PostgreSQL database
`studio_bench_scale` (made, migrated and dropped here), Redis database 7 (REDIS_URL; flushed at
the start: the django-q2 broker and the shared cache) and a real S3 server (moto's `moto_server`,
a bucket of its own: every upload, provider input, output and poster lives there):

- the Stability (EZLink) and AI/ML API (Kling) simulators, in one process of their own
  (`bench/scale.py simulators`), at PROVIDER_TIME_SCALE (0.2: a 10 s poll spacing is 2 s, a
  Kling video takes 54 s, Stability's 20-minute deadline is 4). One Stability generation in ten
  ends CONTENT_FILTERED and one Kling generation in ten ends in an error, so there are refunds
  to check as well as captures;
- two web processes (gunicorn, 2 gthread workers of 2 threads each, DEBUG off), each on its own
  port; PUBLIC_BASE_URL is the first, from which the Kling simulator fetches our input images;
- two worker units, each one `manage.py qcluster` (Q_WORKERS=2: local renders, output copies)
  plus one `manage.py run_engine` (ENGINE_THREADS=4) in a process group of their own.

Three teams (a token each, from studio.api.tokens like `manage.py create_api_token`) upload an
image each, then `--jobs` jobs are created through the REST API (`POST /api/v1/jobs`, JSON with
the image's id) by four client threads spread over both web processes, a third each on the local
engine (1 s at 480p, 8 fps), Stability (each with its own seed, which is how the simulator's
records are matched to our jobs) and Kling (matched by the signed input URL the simulator
fetched). One job in twenty is canceled at once through the API (a 409 when it has already
started is fine). Once a third of the jobs are terminal, one worker unit is SIGKILLed whole
(qcluster, its forked workers and run_engine) and started again 3 s later (`--kills` > 1: the
units take turns, at evenly spaced shares of the run).

When every job is terminal (or `--timeout` passed), the checks, each ok or FAILED:
- every job terminal; every creation answered 201;
- credits: each succeeded job has one reserve and one capture, every other job one reserve and
  one release (ledger rows by kind per job); `check_ledger` clean (ledger_problems());
- no provider job submitted twice: every create the simulators received is matched to its job,
  none has two, and each job's provider id is a generation of the simulator made for that job;
- the simulators saw no breach of the providers' documented contract;
- every succeeded job's video, read from the bucket with boto3, opens with PyAV and decodes at
  least one frame.

What a kill costs, by the product's design: a job whose submission the dead unit had claimed
waits out its submit lease (the provider's submit_timeout + 30 s, not scaled) and is then failed
with its credits released ("could not confirm ... received this job": never sent twice); a poll
it had claimed waits POLL_LEASE (60 s), an output copy it had taken from Redis COLLECT_LEASE
(10 min); a render waits TASK_TIME_LIMIT (120 s unless --task-time-limit) + 60 s. Those leases,
and the real time our renders and copies take, are not compressed by PROVIDER_TIME_SCALE while
the providers' deadlines are, so some jobs expire (and are refunded) that production would only
delay: the smaller the scale, the more. The engine is not the only claimer: each job's
creation queues a `nudge` task, and the qcluster worker running it ticks the engine itself,
claiming every due submission (up to 200) and sending them one after another, so a killed
qcluster can take many claimed submissions with it.

Figures: jobs per minute (jobs / seconds from the first creation to the last terminal job), and
poll lag p95: the web's /metrics gauge `studio_job_poll_lag_seconds` (how overdue the most
overdue active job's next_poll_at is, queued jobs included: rows record no per-poll lateness)
sampled every second during the run. They are the last lines; the exit status is 1 when a check
failed. Every process's output is kept in a log file in a temporary folder, whose tails are
printed when something failed (the folder is then kept).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_setup as setup  # noqa: E402
from api import free_port  # noqa: E402

PYTHON = sys.executable
VENV_BIN = Path(sys.executable).parent
DATABASE = "studio_bench_scale"
REDIS_DB = 7
TIME_SCALE = 0.2
TEAMS = 3
CREDITS = 1_000_000
CLIENT_THREADS = 4
CANCEL_EVERY = 20
FAIL_EVERY = 10  # one generation in ten fails at each simulator
RESTART_AFTER = 3.0  # seconds between a unit's SIGKILL and its restart
STABILITY_KEY, AIML_KEY = "scale-stability-key", "scale-aimlapi-key"
S3_KEY, S3_SECRET, S3_REGION = "scale-test-key", "scale-test-secret", "us-east-1"
LOCAL_PARAMS = {"duration": 1, "resolution": "480p", "aspect": "source", "fps": 8}
PROVIDERS = ("local", "stability", "aimlapi")
MODELS = {
    "local": "camera-motion-v1",
    "stability": "stable-video-diffusion",
    "aimlapi": "kling-video/v1/standard/image-to-video",
}
TERMINAL = ("succeeded", "failed", "canceled", "expired")
LAG = re.compile(r"^studio_job_poll_lag_seconds\s+(\S+)$", re.MULTILINE)


# --- Processes --------------------------------------------------------------------------------
class Processes:
    """Every process the run starts, each in a process group (killed whole), its output in a log
    file of the run's folder."""

    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env
        self.running: dict[str, subprocess.Popen] = {}
        self.logs: list[Path] = []

    def start(self, name: str, args: list[str], *, group: int = 0, **popen) -> subprocess.Popen:
        log = self.folder / f"{name}.log"
        self.logs.append(log)
        with log.open("ab") as out:
            process = subprocess.Popen(
                args,
                env=self.env,
                cwd=ROOT,
                stdout=popen.pop("stdout", out),
                stderr=out,
                stdin=subprocess.DEVNULL,
                process_group=group,
                **popen,
            )
        self.running[name] = process
        return process

    def kill_group(self, pgid: int, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)

    def stop(self, names: list[str] | None = None, timeout: float = 20.0) -> None:
        """SIGTERM each process group once, then SIGKILL what is left of it."""
        names = list(self.running) if names is None else names
        chosen = [self.running.pop(n) for n in names if n in self.running]
        groups = []
        for process in chosen:
            try:
                group = os.getpgid(process.pid)
            except ProcessLookupError:
                group = process.pid
            if group not in groups:
                groups.append(group)
        for group in groups:
            self.kill_group(group, signal.SIGTERM)
        give_up = time.monotonic() + timeout
        for process in chosen:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, give_up - time.monotonic()))
        for group in groups:
            self.kill_group(group)  # the group's forked children too
        for process in chosen:
            process.wait()

    def tails(self, lines: int = 25) -> str:
        parts = []
        for log in sorted(self.logs, key=lambda log: log.name == "moto.log"):
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            shown = 5 if log.name == "moto.log" else lines  # moto logs every request
            if text:
                parts.append(f"--- {log.name} (last {min(shown, len(text))} lines)")
                parts += text[-shown:]
        return "\n".join(parts)


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > give_up:
            raise RuntimeError(f"{what} did not come up within {timeout:g} s")
        time.sleep(0.2)


def answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Unit:
    """One worker unit: a qcluster and a run_engine, in one process group."""

    index: int
    generation: int = 0
    pgid: int | None = None

    def names(self) -> list[str]:
        return [f"unit{self.index}-{self.generation}-{p}" for p in ("qcluster", "engine")]

    def start(self, processes: Processes) -> None:
        self.generation += 1
        qcluster_name, engine_name = self.names()
        qcluster = processes.start(qcluster_name, [PYTHON, "manage.py", "qcluster"])
        self.pgid = qcluster.pid
        processes.start(engine_name, [PYTHON, "manage.py", "run_engine"], group=self.pgid)

    def kill(self, processes: Processes) -> None:
        processes.kill_group(self.pgid)
        for name in self.names():
            processes.running.pop(name).wait()


# --- The simulators' process ------------------------------------------------------------------
def serve_simulators(out: str, time_scale: float) -> None:
    """`bench/scale.py simulators OUT SCALE`: Stability and AI/ML API simulators until SIGTERM;
    prints their base URLs as a JSON line, and writes what they received to OUT when stopped."""
    from tests.simulators import AimlApiSimulator, StabilitySimulator

    class Failing:
        """Every FAIL_EVERY-th generation ends badly (filtered at Stability, an error at Kling)."""

        outcome = "error"
        created = 0

        def take_plan(self):
            plan = super().take_plan()
            with self.lock:
                self.created += 1
                fail = self.created % FAIL_EVERY == 0
            return replace(plan, outcome=self.outcome) if fail else plan

    class Stability(Failing, StabilitySimulator):
        outcome = "filtered"

    class Aiml(Failing, AimlApiSimulator):
        pass

    stability = Stability(STABILITY_KEY, time_scale=time_scale).start()
    aimlapi = Aiml(AIML_KEY, time_scale=time_scale).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(json.dumps({"stability": stability.base_url, "aimlapi": aimlapi.base_url}), flush=True)
    stopped.wait()
    record = {}
    for sim, create_paths in ((stability, ("/v2beta/image-to-video",)), (aimlapi, None)):
        with sim.lock:
            if create_paths is None:
                from tests.simulators.aimlapi import API_PATHS as create_paths
            generations = [
                {
                    "id": g.id,
                    "seed": getattr(g, "params", {}).get("seed") if sim is stability else None,
                    "image_url": g.body.get("image_url") if sim is aimlapi else None,
                    "polls": g.polls,
                }
                for g in sim.generations.values()
            ]
            creates = Counter(
                str(r.status) for r in sim.requests if r.method == "POST" and r.path in create_paths
            )
            record[sim.name] = {
                "generations": generations,
                "create_answers": dict(creates),
                "violations": list(sim.violations),
            }
    Path(out).write_text(json.dumps(record))
    stability.stop()
    aimlapi.stop()


# --- Django-side steps, each in a process of its own on the run's database -------------------
def django_step(env: dict[str, str], step: str, *args: str) -> dict:
    """Run `bench/scale.py <step>` (Django set up on the run's database) and read its JSON."""
    done = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), step, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scale.py {step} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _django() -> None:
    import django

    django.setup()


def seed_step(teams: int) -> None:
    """Migrate; `teams` members with a team each, its credits and a read-write token."""
    _django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from studio.api.tokens import create_token

    tokens = []
    for n in range(teams):
        membership = setup.make_member(CREDITS, f"scale{n}@bench.test")
        tokens.append(create_token(membership, "scale", "rw")[1])
    print(json.dumps({"tokens": tokens}))


def check_step(sims_file: str) -> None:
    """The database side of the checks, as JSON."""
    _django()
    from django.core import signing
    from django.db.models import Count, Q

    from studio.billing.checks import ledger_problems
    from studio.inputs import SALT
    from studio.models import Job

    sims = json.loads(Path(sims_file).read_text())
    jobs = list(
        Job.objects.annotate(
            reserves=Count("ledger", filter=Q(ledger__kind="reserve")),
            captures=Count("ledger", filter=Q(ledger__kind="capture")),
            releases=Count("ledger", filter=Q(ledger__kind="release")),
        ).values(
            "pk",
            "provider",
            "state",
            "params",
            "provider_job_id",
            "video",
            "error",
            "output_ref",
            "poll_attempts",
            "submit_attempts",
            "created_at",
            "running_at",
            "finished_at",
            "last_polled_at",
            "deadline_at",
            "reserves",
            "captures",
            "releases",
        )
    )
    bad_ledger = []
    for job in jobs:
        want = (1, 1, 0) if job["state"] == "succeeded" else (1, 0, 1)
        got = (job["reserves"], job["captures"], job["releases"])
        if job["state"] in TERMINAL and got != want:
            bad_ledger.append(f"{job['pk']} {job['state']}: reserve/capture/release {got}")

    # Which of our jobs each create the simulators took was for.
    by_seed = {
        str(j["params"].get("seed")): j["pk"].hex for j in jobs if j["provider"] == "stability"
    }

    def aiml_job(url: str | None) -> str | None:
        try:
            return signing.loads((url or "").rstrip("/").rsplit("/", 1)[-1], salt=SALT)
        except signing.BadSignature:
            return None

    owners = {"stability": {}, "aimlapi": {}}  # generation id → our job (hex)
    unmatched, creates = [], Counter()
    for provider, record in sims.items():
        for generation in record["generations"]:
            owner = (
                by_seed.get(str(generation["seed"]))
                if provider == "stability"
                else aiml_job(generation["image_url"])
            )
            if owner is None:
                unmatched.append(f"{provider} generation {generation['id'][:12]}")
                continue
            owners[provider][generation["id"]] = owner
            creates[owner] += 1
    twice = [
        f"job {hex_} created {n} times at its provider" for hex_, n in creates.items() if n > 1
    ]
    wrong_id = [
        f"{j['pk']} ({j['provider']}) has provider id {j['provider_job_id'][:16]} that the "
        "simulator did not make for it"
        for j in jobs
        if j["provider"] in owners
        and j["provider_job_id"]
        and owners[j["provider"]].get(j["provider_job_id"]) != j["pk"].hex
    ]
    print(
        json.dumps(
            {
                "jobs": len(jobs),
                "states": dict(Counter(j["state"] for j in jobs)),
                "by_provider": {
                    p: dict(Counter(j["state"] for j in jobs if j["provider"] == p))
                    for p in PROVIDERS
                },
                "active": [str(j["pk"]) for j in jobs if j["state"] not in TERMINAL],
                "bad_ledger": bad_ledger,
                "ledger_problems": ledger_problems(),
                "twice": twice,
                "unmatched": unmatched,
                "wrong_id": wrong_id,
                "videos": [[str(j["pk"]), j["video"]] for j in jobs if j["state"] == "succeeded"],
                "not_succeeded": [
                    f"{str(j['pk'])[:8]} {j['provider']} {j['state']}: output ready "
                    f"{'yes' if j['output_ref'] else 'no'}, {j['submit_attempts']} submit(s), "
                    f"{j['poll_attempts']} poll(s), running "
                    f"{_since(j['created_at'], j['running_at'])}, last poll "
                    f"{_since(j['created_at'], j['last_polled_at'])}, finished "
                    f"{_since(j['created_at'], j['finished_at'])} (deadline "
                    f"{_since(j['created_at'], j['deadline_at'])}) after creation"
                    for j in jobs
                    if j["state"] in ("failed", "expired")
                ],
                "errors": dict(
                    Counter(f"{j['provider']}: {j['error'][:90]}" for j in jobs if j["error"])
                ),
            }
        )
    )


def _since(start, moment) -> str:
    return "-" if moment is None else f"{(moment - start).total_seconds():.1f} s"


# --- The run ---------------------------------------------------------------------------------
@dataclass
class Result:
    jobs: int
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    jobs_per_minute: float = float("nan")
    lag_p95: float = float("nan")
    lag_max: float = float("nan")
    lag_samples: int = 0
    lines: list[str] = field(default_factory=list)
    logs: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))

    def report(self) -> str:
        out = list(self.lines)
        for name, ok, detail in self.checks:
            out.append(
                f"check {name}: {'ok' if ok else 'FAILED'}" + (f" ({detail})" if detail else "")
            )
        out.append(
            f"scale: {self.jobs_per_minute:.1f} jobs/min; poll lag p95 {self.lag_p95:.2f} s "
            f"(max {self.lag_max:.2f} s; /metrics studio_job_poll_lag_seconds sampled every 1 s, "
            f"n={self.lag_samples}); " + ("all checks ok" if self.ok else "a check FAILED")
        )
        return "\n".join(out)


def png_image(n: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((1024, 576)).convert("RGB")
    ImageDraw.Draw(image).ellipse((200 + 60 * n, 150, 500 + 60 * n, 450), fill=(220, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _job_body(i: int, image_id: str) -> dict:
    provider = PROVIDERS[i % 3]
    params = {
        "local": LOCAL_PARAMS,
        "stability": {"seed": 1000 + i},  # our key to the simulator's records
        "aimlapi": {"duration": "5", "prompt": "A slow push-in"},
    }[provider]
    return {"provider": provider, "model": MODELS[provider], "params": params, "image_id": image_id}


def _poll_lag(url: str, token: str, samples: list[float], stop: threading.Event) -> None:
    import httpx

    with httpx.Client(timeout=5.0, headers={"Authorization": f"Bearer {token}"}) as client:
        while not stop.wait(1.0):
            try:
                found = LAG.search(client.get(url).text)
            except httpx.HTTPError:
                continue
            if found:
                samples.append(float(found.group(1)))


def _states(database_url: str) -> tuple[int, int]:
    """(jobs, terminal jobs), straight from the table."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        total, done = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = ANY(%s)) FROM studio_job",
            [list(TERMINAL)],
        ).fetchone()
    return total, done


def playable(data: bytes) -> bool:
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            for _frame in container.decode(video=0):
                return True
    except Exception:  # noqa: BLE001 - any error means "not playable"
        return False
    return False


def run(
    jobs: int = 300,
    kills: int = 1,
    timeout: float = 900.0,
    *,
    kill_share: float = 1 / 3,
    task_time_limit: int | None = None,
    database: str = DATABASE,
    redis_db: int = REDIS_DB,
    time_scale: float = TIME_SCALE,
    say: Callable[[str], None] = print,
) -> Result:
    """The whole run; never raises for a failed check (see Result.ok)."""
    import boto3
    import httpx
    import redis

    result = Result(jobs=jobs)
    t0 = time.monotonic()

    def phase(what: str) -> None:
        say(f"scale: {what} ({time.monotonic() - t0:.0f} s)")

    folder = Path(tempfile.mkdtemp(prefix="studio-scale-"))
    redis_url = f"redis://127.0.0.1:6379/{redis_db}"
    redis.Redis.from_url(redis_url).flushdb()
    database_url = setup.recreate_database(database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "DJANGO_"))}
    processes = Processes(folder, env)
    stop_sampling = threading.Event()
    failed = True
    try:
        # moto's S3 server and the bucket.
        s3_port = free_port()
        s3_url = f"http://127.0.0.1:{s3_port}"
        processes.start(
            "moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
        )
        wait_until(lambda: answers(s3_url), "moto_server", 30)
        bucket = f"studio-scale-{secrets.token_hex(4)}"
        s3 = boto3.client(
            "s3",
            endpoint_url=s3_url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )
        s3.create_bucket(Bucket=bucket)

        # The simulators' process.
        sims_file = folder / "simulators.json"
        sims = processes.start(
            "simulators",
            [PYTHON, str(Path(__file__).resolve()), "simulators", str(sims_file), str(time_scale)],
            stdout=subprocess.PIPE,
            text=True,
        )
        sim_urls = json.loads(sims.stdout.readline() or "{}")
        if not sim_urls:
            raise RuntimeError("the simulators' process did not start")

        web_ports = [free_port(), free_port()]
        webs = [f"http://127.0.0.1:{port}" for port in web_ports]
        metrics_token = secrets.token_urlsafe(24)
        env.update(
            DJANGO_SETTINGS_MODULE="project.settings",
            PYTHONPATH=str(ROOT),
            DATABASE_URL=database_url,
            DB_CONN_MAX_AGE="60",
            REDIS_URL=redis_url,
            DEBUG="false",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PUBLIC_BASE_URL=webs[0],
            OUTBOUND_ALLOW_NETWORKS="127.0.0.0/8",
            LOG_LEVEL="WARNING",
            MEDIA_ROOT=str(folder / "media"),
            SCRATCH_DIR=str(folder / "scratch"),
            WELCOME_CREDITS="0",
            S3_BUCKET=bucket,
            S3_ENDPOINT_URL=s3_url,
            S3_REGION=S3_REGION,
            S3_ACCESS_KEY_ID=S3_KEY,
            S3_SECRET_ACCESS_KEY=S3_SECRET,
            STABILITY_API_KEY=STABILITY_KEY,
            STABILITY_BASE_URL=sim_urls["stability"],
            AIML_API_KEY=AIML_KEY,
            AIML_BASE_URL=sim_urls["aimlapi"],
            PROVIDER_TIME_SCALE=str(time_scale),
            ENGINE_THREADS="4",
            ENGINE_STOP_SECONDS="5",
            Q_WORKERS="2",
            API_RATE_LIMIT_PER_MINUTE="100000",
            METRICS_TOKEN=metrics_token,
        )
        if task_time_limit:
            # A render killed with its worker is failed once it outlives the task time limit
            # (+ 60 s): shorter than the defaults (120/180/240 s) for a short run.
            env.update(
                TASK_TIME_LIMIT=str(task_time_limit),
                Q_TIMEOUT=str(task_time_limit + 10),
                Q_RETRY=str(task_time_limit + 20),
                WEBHOOK_TIMEOUT_SECONDS=str(max(1, min(15, (task_time_limit - 1) // 4))),
            )
        tokens = django_step(env, "seed", str(TEAMS))["tokens"]
        phase("migrated and seeded")

        for n, port in enumerate(web_ports):
            processes.start(
                f"web{n + 1}",
                [str(VENV_BIN / "gunicorn"), "project.wsgi", "--bind", f"127.0.0.1:{port}"]
                + ["--workers", "2", "--worker-class", "gthread", "--threads", "2"]
                + ["--log-level", "warning"],
            )
        for web in webs:
            wait_until(lambda web=web: answers(web + "/healthz"), f"the web at {web}")
        units = [Unit(0), Unit(1)]
        for unit in units:
            unit.start(processes)

        phase("web processes answer, worker units started")
        # Each team uploads its image once, through the API, on either web process.
        clients = [
            httpx.Client(timeout=60.0, headers={"Authorization": f"Bearer {token}"})
            for token in tokens
        ]
        images = []
        for n, client in enumerate(clients):
            answer = client.post(
                f"{webs[n % 2]}/api/v1/images",
                files={"image": (f"team{n}.png", png_image(n), "image/png")},
            )
            if answer.status_code != 201:
                raise RuntimeError(f"image upload: {answer.status_code} {answer.text[:300]}")
            images.append(answer.json()["id"])

        sampler = threading.Thread(
            target=_poll_lag,
            args=(webs[1] + "/metrics", metrics_token, lag_samples := [], stop_sampling),
            daemon=True,
        )
        sampler.start()

        refused: list[str] = []
        resent: list[int] = []
        canceled: list[str] = []
        next_index = iter(range(jobs))
        lock = threading.Lock()

        def submit_some() -> None:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                team = (i // 3) % TEAMS
                client, web = clients[team], webs[i % 2]
                answer, errors = None, []
                for _ in range(3):
                    # A keep-alive connection the server closes as we reuse it is reset; the
                    # same Idempotency-Key makes sending again safe (one job, one answer).
                    try:
                        answer = client.post(
                            f"{web}/api/v1/jobs",
                            json=_job_body(i, images[team]),
                            headers={"Idempotency-Key": f"scale-{i}"},
                        )
                        break
                    except httpx.TransportError as error:
                        errors.append(repr(error))
                        time.sleep(0.5)
                if answer is None:
                    with lock:
                        refused.append(f"job {i}: {errors[-1]}")
                    continue
                if errors:
                    with lock:
                        resent.append(i)
                if answer.status_code != 201:
                    with lock:
                        refused.append(f"job {i}: {answer.status_code} {answer.text[:200]}")
                    continue
                if i % CANCEL_EVERY == CANCEL_EVERY - 1:
                    job_id = answer.json()["id"]
                    stopped = client.post(f"{web}/api/v1/jobs/{job_id}/cancel")
                    if stopped.status_code == 200:
                        with lock:
                            canceled.append(job_id)

        started = time.monotonic()
        submitters = [threading.Thread(target=submit_some) for _ in range(CLIENT_THREADS)]
        for thread in submitters:
            thread.start()

        # Kill a unit at each share of the run, while the submissions go on.
        # The first kill once `kill_share` of the jobs are terminal, the others evenly after it.
        first = kill_share * jobs
        step = (jobs - first) / (kills + 1)
        kill_at = [max(1, round(first + k * step)) for k in range(kills)]
        killed_at: list[tuple[float, int]] = []
        give_up = started + timeout
        done = total = 0
        last_report = started
        while time.monotonic() < give_up:
            total, done = _states(database_url)
            submitting = any(t.is_alive() for t in submitters)
            if kill_at and done >= kill_at[0]:
                unit = units[len(killed_at) % len(units)]
                unit.kill(processes)
                killed_at.append((time.monotonic() - started, done))
                say(f"scale: SIGKILLed worker unit {unit.index} at {done}/{jobs} jobs terminal")
                time.sleep(RESTART_AFTER)
                unit.start(processes)
                kill_at.pop(0)
                continue
            if not submitting and done >= total:
                if kill_at:  # creations refused: the share for a kill was never reached
                    say(f"scale: {len(kill_at)} kill(s) not made: too few jobs became terminal")
                break
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                say(f"scale: {time.monotonic() - started:.0f} s, {done}/{total} terminal")
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        phase(f"{done}/{total} jobs terminal")
        for thread in submitters:
            thread.join(timeout=60)
        stop_sampling.set()
        sampler.join(timeout=5)
        for client in clients:
            client.close()

        # Stop everything but the S3 server, then the simulators write their records.
        processes.stop([n for unit in units for n in unit.names()] + ["web1", "web2"], 10)
        processes.stop(["simulators"])
        phase("every job terminal, processes stopped")
        facts = django_step(env, "check", str(sims_file))
        sim_record = json.loads(sims_file.read_text())

        result.jobs_per_minute = done / elapsed * 60 if elapsed else float("nan")
        result.lag_samples = len(lag_samples)
        result.lag_p95 = setup.percentile(lag_samples, 0.95)
        result.lag_max = max(lag_samples, default=float("nan"))
        mix = ", ".join(f"{p} {jobs // 3 + (i < jobs % 3)}" for i, p in enumerate(PROVIDERS))
        kills_said = ", ".join(f"at {n}/{jobs} terminal ({t:.0f} s)" for t, n in killed_at)
        result.lines += [
            f"scale: {jobs} jobs ({mix}) "
            f"through 2 web processes by {len(tokens)} teams, 2 worker units (qcluster + "
            f"run_engine); {len(killed_at)} unit SIGKILLed {kills_said}, restarted after "
            f"{RESTART_AFTER:g} s; {elapsed:.0f} s from the first creation to the last terminal "
            f"job; PROVIDER_TIME_SCALE {time_scale:g}",
            "states: "
            + ", ".join(f"{k} {v}" for k, v in sorted(facts["states"].items()))
            + "; by provider: "
            + "; ".join(
                f"{p} " + ", ".join(f"{k} {v}" for k, v in sorted(s.items()))
                for p, s in facts["by_provider"].items()
            ),
            f"canceled through the API at once: {len(canceled)}; creations sent again with their "
            f"Idempotency-Key after a reset connection: {len(resent)}",
        ]
        result.lines += [f"  error: {n}× {text}" for text, n in facts["errors"].items()]
        result.lines += [f"  {line}" for line in facts["not_succeeded"][:30]]
        result.lines += [
            f"simulator {name}: {len(r['generations'])} generations, create answers "
            f"{r['create_answers']}"
            for name, r in sim_record.items()
        ]

        result.check("every creation answered 201", not refused, "; ".join(refused[:5]))
        result.check(
            "every job terminal",
            facts["jobs"] == jobs and not facts["active"],
            f"{facts['jobs']} jobs, {len(facts['active'])} still active"
            + (f" after the {timeout:g} s timeout" if facts["active"] else ""),
        )
        result.check(
            "each success captured once, every other job released once",
            not facts["bad_ledger"],
            "; ".join(facts["bad_ledger"][:5]),
        )
        result.check(
            "check_ledger clean",
            not facts["ledger_problems"],
            "; ".join(facts["ledger_problems"][:5]),
        )
        dupes = facts["twice"] + facts["unmatched"] + facts["wrong_id"]
        result.check(
            "no provider job submitted twice",
            not dupes,
            "; ".join(dupes[:5])
            or f"{sum(len(r['generations']) for r in sim_record.values())} provider jobs, "
            "each matched to one of ours",
        )
        violations = [f"{n}: {v}" for n, r in sim_record.items() for v in r["violations"]]
        result.check(
            "simulators saw no contract violation",
            not violations,
            f"{len(violations)}: " + "; ".join(violations[:3]) if violations else "",
        )
        unplayable = []
        for job_id, name in facts["videos"]:
            try:
                data = s3.get_object(Bucket=bucket, Key=name)["Body"].read() if name else b""
            except Exception as error:  # noqa: BLE001
                unplayable.append(f"{job_id}: {error}")
                continue
            if not playable(data):
                unplayable.append(f"{job_id}: {name!r} does not decode")
        phase("videos read from S3 and decoded")
        result.check(
            "every succeeded video plays from S3",
            not unplayable,
            "; ".join(unplayable[:5])
            or f"{len(facts['videos'])} videos, a frame decoded from each",
        )
        failed = not result.ok
    except Exception as error:  # noqa: BLE001 - reported as a failed check, with the logs
        import traceback

        result.check("the run completed", False, f"{type(error).__name__}: {error}")
        say(traceback.format_exc())
    finally:
        stop_sampling.set()
        processes.stop()
        if failed:
            result.logs = f"logs kept in {folder}\n" + processes.tails()
        else:
            shutil.rmtree(folder, ignore_errors=True)
        setup.drop_database(database)
        with contextlib.suppress(redis.RedisError):
            redis.Redis.from_url(redis_url).flushdb()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE)
    parser.add_argument(
        "--task-time-limit", type=int, default=None, help="TASK_TIME_LIMIT (default: the product's)"
    )
    args = parser.parse_args()
    result = run(
        args.jobs,
        args.kills,
        args.timeout,
        time_scale=args.time_scale,
        task_time_limit=args.task_time_limit,
    )
    if result.logs:
        print(result.logs, file=sys.stderr)
    print(result.report())
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["simulators"]:
        serve_simulators(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1:2] == ["seed"]:
        seed_step(int(sys.argv[2]))
    elif sys.argv[1:2] == ["check"]:
        check_step(sys.argv[2])
    else:
        main()
