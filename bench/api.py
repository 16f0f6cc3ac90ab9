"""REST API (issue 8): job GET and job list against a trivial view on the same server, SQL queries
per request, and what creating a job adds to a request.

    .venv/bin/python bench/api.py [--rounds 8] [--seconds 2] [--threads 4] [--creates 200]
                                  [--profile]

Everything runs against the benchmark's own PostgreSQL database `studio_bench_api` (made, migrated
and dropped here). One team holds 10,000 jobs, copied in (COPY) as the product would have
left them: created over six months, mostly finished (succeeded with a video and poster, failed,
canceled, expired, a few videos deleted), a handful queued and running in the last minutes, across
every provider; each with its reservation and, once finished, its capture or release, the team's
cached balance and held credits agreeing with the ledger (check_ledger is run on it). A second
team holds 10 jobs of the same mix, for the list's query count.

- Throughput: gunicorn, 2 sync workers, DEBUG off, serves the product's URLs plus /bench/trivial/
  (bench/api_settings.py → bench/api_urls.py; nothing else differs). Threads of this process
  (httpx, Bearer token) keep the workers busy, one endpoint at a time for `--seconds`, in rounds
  whose order rotates so drifting noise hits every endpoint alike: the trivial view, GET of one
  job (a different one of 200 each time), and the list's first page (25 of 10,000). Requests per
  second and their ratios to the trivial view; p50/p95 latency from one client at a time; the
  CPU each request cost the server (gunicorn workers, and their PostgreSQL backends) as a
  cross-check of the ratios, which the client's own CPU can cap on a small machine.
- Queries per request: Django's test client in this process, on the same database, warm (the
  token's last-use stamp and the ETA medians are cached for a minute, so the first request of a
  minute may add one or two).
- Creation: POST /api/v1/jobs in this process with the test client, local engine (no provider
  call by construction: creating a job only reserves, stores and queues; the render is a
  django-q2 task that stays queued, as no worker runs and Conf.SYNC is off): multipart with a
  640×400 PNG, and JSON naming an image uploaded once (image_id); `--creates` of each.

The figures and their targets are the last lines; a missed target says MISSED (the exit status is
0: this is a measurement), and a profile of the missed request is printed above them.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_setup as setup  # noqa: E402

DATABASE = "studio_bench_api"
TEAM_JOBS, SMALL_TEAM_JOBS = 10_000, 10
RATE_LIMIT = 1_000_000_000  # per token per minute: never reached
TARGET_GET, TARGET_LIST, TARGET_CREATE_MS = 0.4, 0.2, 15.0
GET_SAMPLE = 200  # job GETs cycle over this many of the team's jobs
LIST_PAGE = 25

# provider, model, weight, price (credits)
MIX = [
    ("local", "camera-motion-v1", 35, None),  # price: its duration
    ("stability", "stable-video-diffusion", 20, 20),
    ("modelslab", "img2video_ultra", 12, 31),
    ("modelslab", "img2video", 5, 10),
    ("aimlapi", "kling-video/v1/standard/image-to-video", 15, 30),
    ("akool", "image2video", 13, 20),
]
TERMINAL_MIX = [("succeeded", 80), ("failed", 12), ("canceled", 4), ("expired", 4)]
PROMPTS = [
    "The balloon drifts slowly upwards.",
    "Waves roll onto the beach at sunset",
    "A slow push-in on the mountain village, mist rising",
    "Leaves sway in a light breeze",
    "",
]
FAILURES = [
    "The provider refused the image: faces must be clearly visible.",
    "The provider stopped answering; your credits were refunded.",
    "The local engine could not make this video: an internal error (job 0).",
]
SIZES = [(1024, 576), (640, 400), (1920, 1080), (768, 768), (576, 1024)]


# --- Seeding --------------------------------------------------------------------------------
def copy_rows(model, rows) -> None:
    """Insert model instances with PostgreSQL's COPY, as they are (created_at included): ten
    times quicker than bulk_create for tens of thousands of rows, and nothing here is measured."""
    from django.db import connection
    from django.db.models import AutoField, BigAutoField

    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoField | BigAutoField)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(
                    [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
                )


def member(email: str, credits: int, team=None):
    """A user (no password: hashing one takes a second here) with their personal team holding
    `credits`, or a member of `team`; returns the membership."""
    from studio.billing import ledger
    from studio.models import Membership, Role, User

    user = User.objects.create_user(email)
    if team is not None:
        return Membership.objects.create(team=team, user=user, role=Role.MEMBER)
    membership = user.memberships.get()
    ledger.grant(membership.team, credits, actor=None, reason="Benchmark budget")
    return membership


def _params(provider_key: str, model: str, rng: random.Random) -> dict:
    from studio.providers import PROVIDERS

    params = PROVIDERS[provider_key].model(model).defaults()
    if provider_key == "local":
        params |= {
            "duration": rng.choice([3, 5, 5, 8, 10]),
            "motion": rng.choice(["zoom_in", "zoom_out", "pan_left", "ken_burns", "pan_up"]),
            "resolution": rng.choice(["480p", "720p", "720p", "1080p"]),
        }
    elif "prompt" in params:
        params["prompt"] = rng.choice(PROMPTS)
    return params


def make_job(team, creator, version, created, state: str, rng: random.Random):
    """One job as the product leaves it in `state` (not saved)."""
    from django.utils import timezone

    from studio.models import Job
    from studio.providers import PROVIDERS

    provider_key, model, _, price = rng.choices(MIX, weights=[m[2] for m in MIX])[0]
    params = _params(provider_key, model, rng)
    width, height = rng.choice(SIZES)
    month, name = created.strftime("%Y/%m"), secrets.token_hex(16)
    job = Job(
        team=team,
        creator=creator,
        provider=provider_key,
        model=model,
        params=params,
        input_image=f"inputs/{month}/{name}.png",
        input_width=width,
        input_height=height,
        price_version=version,
        price_quoted=params["duration"] if price is None else price,
        state=state,
        created_at=created,
        deadline_at=created + timedelta(hours=2),
        webhook_token=secrets.token_urlsafe(32),
    )
    remote = PROVIDERS[provider_key].remote
    if state in ("running", "succeeded", "failed", "expired"):
        job.submitting_at = created + timedelta(seconds=rng.uniform(0.2, 3))
        job.running_at = job.submitting_at + timedelta(seconds=rng.uniform(0.5, 4))
        job.submit_attempts = 1
        job.provider_job_id = secrets.token_hex(12) if remote else f"local-{job.pk}"
        job.key_fingerprint = secrets.token_hex(8) if remote else ""
    run = timedelta(seconds=rng.uniform(40, 300) if remote else rng.uniform(4, 25))
    if state == "running":
        job.next_poll_at = timezone.now() + timedelta(seconds=rng.uniform(1, 15))
        job.poll_attempts = rng.randint(1, 20)
        job.progress = 0 if remote else rng.randint(5, 95)
    elif state == "queued":
        job.next_poll_at = created
    elif state == "succeeded":
        job.finished_at = job.running_at + run
        job.progress = 100
        job.poll_attempts = rng.randint(1, 20) if remote else 0
        job.video_width, job.video_height = (1280, 720) if width >= height else (720, 1280)
        job.video_duration = float(params.get("duration") or 5)
        job.video_bytes = rng.randint(800_000, 12_000_000)
        job.output_format = "mp4"
        if rng.random() < 0.03:  # its video deleted since
            job.deleted_at = job.finished_at + timedelta(days=rng.uniform(1, 20))
        else:
            job.video = f"videos/{month}/{name}.mp4"
            job.poster = f"posters/{month}/{name}.jpg"
        if remote:
            job.last_response = {"status": "success", "id": job.provider_job_id}
    elif state == "failed":
        job.finished_at = job.running_at + run / 2
        job.error = rng.choice(FAILURES)
    elif state == "expired":
        job.finished_at = created + timedelta(hours=2)
        job.error = "The provider took too long; your credits were refunded."
    else:  # canceled before it started
        job.finished_at = created + timedelta(seconds=rng.uniform(2, 60))
        job.error = "Canceled before it started."
    return job


def seed_jobs(team, creators, count: int, rng: random.Random, active: int | None = None) -> list:
    """`count` jobs of the team with their ledger rows: a reservation each, and a capture or
    release once finished, the account's cached figures moved to match (as ledger.reserve,
    capture and release would have); `active` of them (8 of 10,000 by default) queued or
    running. Returns the jobs."""
    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from studio.models import CreditAccount, LedgerEntry, PriceBookVersion

    now = timezone.now()
    version = PriceBookVersion.objects.latest()
    if active is None:
        active = max(3, count // 1250)  # 8 of 10,000: the newest page holds some of them
    jobs = []
    for i in range(count):
        if i < active:
            state = "queued" if i % 3 == 0 and i < 9 else "running"
            created = now - timedelta(seconds=rng.uniform(5, 600))
        else:
            state = rng.choices(TERMINAL_MIX, weights=[t[1] for t in TERMINAL_MIX])[0][0]
            # more recent jobs are denser, as a growing team's are
            created = now - timedelta(days=180 * rng.random() ** 1.5, seconds=600)
        jobs.append(make_job(team, rng.choice(creators), version, created, state, rng))

    def entry(job, kind: str, **fields):
        return LedgerEntry(
            team=team,
            kind=kind,
            amount=job.price_quoted,
            job=job,
            member=job.creator,
            provider=job.provider,
            **fields,
        )

    with transaction.atomic():
        copy_rows(type(jobs[0]), jobs)
        reserves = [entry(j, "reserve", actor=j.creator, created_at=j.created_at) for j in jobs]
        copy_rows(LedgerEntry, reserves)
        reservation = dict(
            LedgerEntry.objects.filter(team=team, kind="reserve").values_list("job_id", "id")
        )
        settlements = [
            entry(
                job,
                "capture" if job.state == "succeeded" else "release",
                reservation_id=reservation[job.pk],
                reason="Video delivered"
                if job.state == "succeeded"
                else f"{job.state.capitalize()}: {job.error}"[:300],
                created_at=job.finished_at,
            )
            for job in jobs
            if job.state not in ("queued", "running")
        ]
        copy_rows(LedgerEntry, settlements)
        captured = sum(e.amount for e in settlements if e.kind == "capture")
        held = sum(j.price_quoted for j in jobs if j.state in ("queued", "running"))
        CreditAccount.objects.filter(team=team).update(
            balance=F("balance") - captured, held=F("held") + held
        )
    return jobs


def seed(rng: random.Random):
    """The big team (four members, 10,000 jobs) and the small one (10 jobs), a read-and-write
    token for each. Returns (membership, raw token, jobs, small team's raw token)."""
    from django.db import connection

    from studio.api.tokens import create_token
    from studio.billing.checks import ledger_problems

    owner = member("owner@bench.test", credits=5_000_000)
    creators = [owner.user] + [
        member(f"member{n}@bench.test", 0, team=owner.team).user for n in range(3)
    ]
    jobs = seed_jobs(owner.team, creators, TEAM_JOBS, rng)
    small = member("small@bench.test", credits=10_000)
    seed_jobs(small.team, [small.user], SMALL_TEAM_JOBS, rng)
    _, raw = create_token(owner, "bench", "rw")
    _, small_raw = create_token(small, "bench", "rw")
    problems = ledger_problems()
    if problems:
        sys.exit("api: the seeded ledger is inconsistent:\n  " + "\n  ".join(problems[:10]))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # the statistics a live database has
    return owner, raw, jobs, small_raw


# --- The server and its load ----------------------------------------------------------------
def configure_server(database: str, site: str, **more) -> dict[str, str]:
    """setup.configure() for a benchmark that runs the product's server beside a trivial view
    (bench/api_settings.py), as production runs it: DEBUG off, at `site`."""
    return setup.configure(
        database,
        DJANGO_SETTINGS_MODULE="bench.api_settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
        PUBLIC_BASE_URL=site,
        DB_CONN_MAX_AGE=600,  # one backend per worker all run long: its CPU is read by pid
        **more,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gunicorn(env: dict[str, str], port: int) -> subprocess.Popen:
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    return subprocess.Popen(
        [gunicorn, "project.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
        + ["--log-level", "warning"],
        env=env,
        cwd=setup.ROOT,
    )


def wait_for(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit(f"api: the server did not answer at {url}")


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Endpoint:
    def __init__(self, name: str, paths: list[str]):
        self.name, self.paths = name, paths
        self.requests, self.seconds, self.errors = 0, 0.0, 0
        self.serial: list[float] = []  # one client at a time, seconds per request
        self.app_cpu = self.db_cpu = self.client_cpu = 0.0
        self.bytes = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def per_request_ms(self, cpu: float) -> float:
        return 1000 * cpu / self.requests if self.requests else float("nan")


class Load:
    """Threads of this process sending one endpoint's requests as fast as answers come."""

    def __init__(self, site: str, token: str, threads: int, server_pids, db_pids):
        self.site, self.threads = site, threads
        self.headers = {"Authorization": f"Bearer {token}"}
        self.server_pids, self.db_pids = server_pids, db_pids

    def _cpu(self, pids) -> float:
        return sum(setup.cpu_seconds(pid) for pid in pids)

    def headers_for(self, endpoint: Endpoint) -> dict[str, str]:
        return self.headers

    def run(self, endpoint: Endpoint, seconds: float) -> None:
        import httpx

        counts = [0] * self.threads
        errors = [0] * self.threads
        stop_at = [0.0]
        start = threading.Barrier(self.threads + 1)

        def worker(n: int) -> None:
            paths = endpoint.paths
            with httpx.Client(
                base_url=self.site, headers=self.headers_for(endpoint), timeout=10
            ) as client:
                i = n * 7919
                start.wait()
                while time.perf_counter() < stop_at[0]:
                    answer = client.get(paths[i % len(paths)])
                    i += 1
                    counts[n] += 1
                    if answer.status_code != 200:
                        errors[n] += 1

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(self.threads)]
        for thread in pool:
            thread.start()
        app0, db0, me0 = self._cpu(self.server_pids), self._cpu(self.db_pids), time.process_time()
        began = time.perf_counter()
        stop_at[0] = began + seconds
        start.wait()
        for thread in pool:
            thread.join()
        ended = time.perf_counter()
        endpoint.seconds += ended - began
        endpoint.requests += sum(counts)
        endpoint.errors += sum(errors)
        endpoint.app_cpu += self._cpu(self.server_pids) - app0
        endpoint.db_cpu += self._cpu(self.db_pids) - db0
        endpoint.client_cpu += time.process_time() - me0

    def serial(self, endpoint: Endpoint, seconds: float) -> None:
        import httpx

        with httpx.Client(
            base_url=self.site, headers=self.headers_for(endpoint), timeout=10
        ) as client:
            stop_at = time.perf_counter() + seconds
            i = len(endpoint.serial)
            while time.perf_counter() < stop_at:
                began = time.perf_counter()
                answer = client.get(endpoint.paths[i % len(endpoint.paths)])
                endpoint.serial.append(time.perf_counter() - began)
                endpoint.bytes = len(answer.content)
                i += 1


def run_rounds(make_load, endpoints, server, database: str, rounds: int, seconds: float):
    """Warm every endpoint (each worker imports the URLconf, opens its connection), find the
    server's PostgreSQL backends, then measure in rounds whose order rotates so drifting noise
    hits every endpoint alike. Returns (server pids, database backend pids)."""
    from django.db import connection

    server_pids = [server.pid, *children(server.pid)]
    warm = make_load(server_pids, [])
    for endpoint in endpoints:
        warm.run(Endpoint(endpoint.name, endpoint.paths), 1.0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        db_pids = [row[0] for row in cursor.fetchall()]
    connection.close()
    load = make_load(server_pids, db_pids)
    for round_no in range(rounds):
        shift = round_no % len(endpoints)
        for endpoint in endpoints[shift:] + endpoints[:shift]:
            load.run(endpoint, seconds)
            load.serial(endpoint, seconds / 4)
    return server_pids, db_pids


# --- In-process measurements ----------------------------------------------------------------
def count_queries(client, path: str, token: str) -> tuple[int, list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    client.get(path, **auth)  # warm: the token's last-use stamp, the ETA medians
    with CaptureQueriesContext(connection) as captured:
        answer = client.get(path, **auth)
    if answer.status_code != 200:
        sys.exit(f"api: GET {path} answered {answer.status_code}: {answer.content[:300]!r}")
    return len(captured), [q["sql"] for q in captured.captured_queries]


def png_640x400() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((640, 400)).convert("RGB")
    ImageDraw.Draw(image).ellipse((200, 100, 400, 300), fill=(220, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class Creator:
    """POST /api/v1/jobs through the test client, multipart or JSON (image_id)."""

    PARAMS = {"duration": 5, "motion": "zoom_in", "resolution": "720p"}

    def __init__(self, client, token: str):
        from django.core.files.uploadedfile import SimpleUploadedFile

        self.client, self.auth = client, {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        self.png = png_640x400()
        answer = client.post(
            "/api/v1/images",
            {"image": SimpleUploadedFile("photo.png", self.png, "image/png")},
            **self.auth,
        )
        if answer.status_code != 201:
            sys.exit(f"api: image upload answered {answer.status_code}: {answer.content[:300]!r}")
        self.image_id = answer.json()["id"]

    def multipart(self):
        from django.core.files.uploadedfile import SimpleUploadedFile

        image = SimpleUploadedFile("photo.png", self.png, "image/png")
        data = {"provider": "local", "model": "camera-motion-v1", "image": image, **self.PARAMS}
        return self.client.post("/api/v1/jobs", data, **self.auth)

    def json(self):
        body = {
            "provider": "local",
            "model": "camera-motion-v1",
            "params": self.PARAMS,
            "image_id": self.image_id,
        }
        return self.client.post("/api/v1/jobs", body, content_type="application/json", **self.auth)

    def timed(self, make, count: int) -> tuple[list[float], list[float]]:
        """Seconds per request, wall clock and this process's CPU."""
        for _ in range(5):  # warm
            self._check(make())
        wall, cpu = [], []
        for _ in range(count):
            began, cpu_began = time.perf_counter(), time.process_time()
            answer = make()
            wall.append(time.perf_counter() - began)
            cpu.append(time.process_time() - cpu_began)
            self._check(answer)
        return wall, cpu

    def queries(self, make) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            self._check(make())
        return len(captured)

    @staticmethod
    def _check(answer) -> None:
        if answer.status_code != 201:
            sys.exit(f"api: create answered {answer.status_code}: {answer.content[:300]!r}")


# (label, file suffix, function): cumulative CPU of these functions (they overlap: auth runs SQL)
PROFILE_PARTS = [
    ("SQL compilation", "django/db/models/sql/compiler.py", "as_sql"),
    ("SQL execution, client side", "django/db/backends/utils.py", "_execute"),
    ("rows → model instances", "django/db/models/base.py", "from_db"),
    ("token auth", "studio/api/auth.py", "authenticate"),
    ("signed file URLs", "studio/api/files.py", "signed_file_url"),
    ("reverse()", "django/urls/base.py", "reverse"),
    ("response schema (ninja/pydantic)", "ninja/operation.py", "_result_to_response"),
    ("image check", "studio/uploads.py", "check_image"),
    ("storing files", "django/core/files/storage/base.py", "save"),
    ("price quote", "studio/billing/prices.py", "quote"),
    ("reserve credits", "studio/billing/ledger.py", "reserve"),
    ("answer re-read", "studio/api/jobs.py", "_answer"),
    ("test client", "django/test/client.py", "_base_environ"),
]


def profile(label: str, send, count: int) -> list[str]:
    """Where the CPU of `count` calls of send() goes, in this process: known parts of a request,
    then our own heaviest functions. (The database's CPU is its own; the load figures show it.)"""
    began = time.process_time()
    for _ in range(count):
        send()
    plain = (time.process_time() - began) / count
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(count):
        send()
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(tottime for _, _, tottime, _, _ in stats.values()) or 1.0
    parts = []
    for name, suffix, function in PROFILE_PARTS:
        spent = sum(
            cumtime
            for (filename, _, func), (_, _, _, cumtime, _) in stats.items()
            if func == function and filename.endswith(suffix)
        )
        if spent / total >= 0.02:
            parts.append(f"{name} {100 * spent / total:.0f} %")
    ours = sorted(
        (
            (cumtime, f"{_short(filename)}:{line} {function}")
            for (filename, line, function), (_, _, _, cumtime, _) in stats.items()
            if cumtime < 0.9 * total and _short(filename).startswith(("studio/", "project/"))
        ),
        reverse=True,
    )
    lines = [
        f"profile of {count} × {label}, in-process CPU: {1000 * plain:.1f} ms each "
        f"({1000 * total / count:.1f} ms under cProfile, which inflates call-heavy code; read "
        f"the shares)",
        "  shares (overlapping): " + ", ".join(parts),
        "  our heaviest functions, cumulative: "
        + "; ".join(f"{100 * cumtime / total:.0f} % {where}" for cumtime, where in ours[:10]),
    ]
    return lines


def _short(filename: str) -> str:
    path = filename.replace("\\", "/")
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    return path.removeprefix(str(setup.ROOT) + "/")


# --- Main -----------------------------------------------------------------------------------
def ms(values: list[float], share: float) -> str:
    return f"{1000 * setup.percentile(values, share):.1f}"


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0, help="per endpoint and round")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--creates", type=int, default=200, help="of each kind")
    parser.add_argument("--profile", action="store_true", help="profile even if targets are met")
    args = parser.parse_args()
    rng = random.Random(8)
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    env = configure_server(DATABASE, site, API_RATE_LIMIT_PER_MINUTE=RATE_LIMIT)
    server = None
    try:
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.utils import timezone
        from django_q.conf import Conf
        from django_q.models import OrmQ

        from studio.billing.checks import ledger_problems
        from studio.models import Job

        if Conf.SYNC or settings.ROOT_URLCONF != "bench.api_urls" or settings.DEBUG:
            sys.exit("api: expected the bench settings, DEBUG off and django-q2 not in sync mode")
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        owner, token, jobs, small_token = seed(rng)
        seeded = time.monotonic() - started
        get_paths = [f"/api/v1/jobs/{job.pk}" for job in rng.sample(jobs, GET_SAMPLE)]
        list_path = f"/api/v1/jobs?limit={LIST_PAGE}"

        client = Client()
        q_get, _ = count_queries(client, get_paths[0], token)
        q_small, small_sql = count_queries(client, list_path, small_token)
        q_list, list_sql = count_queries(client, list_path, token)
        connection.close()

        server = start_gunicorn(env, port)
        wait_for(site + "/bench/trivial/")
        endpoints = [
            Endpoint("trivial", ["/bench/trivial/"]),
            Endpoint("job GET", get_paths),
            Endpoint("job list", [list_path]),
        ]
        make_load = partial(Load, site, token, args.threads)
        run_rounds(make_load, endpoints, server, DATABASE, args.rounds, args.seconds)
        setup.stop(server)
        server = None
        load_after = os.getloadavg()[0]

        since = timezone.now()
        creator = Creator(client, token)
        q_create_multipart = creator.queries(creator.multipart)
        q_create_json = creator.queries(creator.json)
        multipart, multipart_cpu = creator.timed(creator.multipart, args.creates)
        from_id, from_id_cpu = creator.timed(creator.json, args.creates)
        queued_tasks = OrmQ.objects.count()
        created = Job.objects.filter(team=owner.team, created_at__gte=since)
        new_jobs = created.filter(state="queued").count(), created.count()
        problems = ledger_problems()

        trivial, get, listing = endpoints
        get_ratio = get.rate / trivial.rate
        list_ratio = listing.rate / trivial.rate
        create_p50 = 1000 * setup.percentile(multipart, 0.5)
        json_p50 = 1000 * setup.percentile(from_id, 0.5)
        missed_get = get_ratio < TARGET_GET
        missed_list = list_ratio < TARGET_LIST or q_list != q_small
        missed_create = max(create_p50, json_p50) > TARGET_CREATE_MS

        print(
            f"seeded {TEAM_JOBS:,} + {SMALL_TEAM_JOBS} jobs with their ledger in {seeded:.1f} s; "
            f"check_ledger: {len(problems)} problems after the run; "
            f"{queued_tasks} django-q2 tasks left queued (none run); {new_jobs[0]} of the "
            f"{new_jobs[1]} jobs created still queued"
        )
        print(
            f"load: gunicorn 2 sync workers, {args.threads} client threads, {args.rounds} rounds × "
            f"{args.seconds:g} s per endpoint; latency from one client at a time; "
            f"CPU per request: server = gunicorn + its PostgreSQL backends; "
            f"{os.cpu_count()} CPUs shared by client, server and database, load average "
            f"{load_before:.1f} before, {load_after:.1f} after"
        )
        trivial_cpu = trivial.per_request_ms(trivial.app_cpu + trivial.db_cpu)
        for e in endpoints:
            cpu_ms = e.per_request_ms(e.app_cpu + e.db_cpu)
            ratio = "1×" if e is trivial else f"{e.rate / trivial.rate:.3f}× trivial"
            cpu_ratio = "" if e is trivial else f" (by server CPU {trivial_cpu / cpu_ms:.3f}×)"
            print(
                f"  {e.name:9} {e.rate:7.0f} req/s  {ratio}{cpu_ratio}; p50 {ms(e.serial, 0.5)} ms "
                f"p95 {ms(e.serial, 0.95)} ms; server CPU {e.per_request_ms(e.app_cpu):.2f} ms app "
                f"+ {e.per_request_ms(e.db_cpu):.2f} ms db; client CPU "
                f"{e.per_request_ms(e.client_cpu):.2f} ms; {e.bytes:,} bytes; "
                f"{e.requests} requests, {e.errors} not 200"
            )
        if missed_list and q_list != q_small:
            print("  list queries at 10 jobs:\n    " + "\n    ".join(small_sql))
            print("  list queries at 10,000 jobs:\n    " + "\n    ".join(list_sql))

        targets_missed = missed_get or missed_list or missed_create
        if targets_missed or args.profile:
            if missed_get or args.profile:
                path = get_paths[1]
                auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
                print("\n".join(profile("job GET", lambda: client.get(path, **auth), 60)))
            if missed_list or args.profile:
                auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
                print("\n".join(profile("job list", lambda: client.get(list_path, **auth), 20)))
            if missed_create or args.profile:
                print("\n".join(profile("create (multipart)", creator.multipart, 20)))

        print(
            f"queries per request: job GET {q_get}; list (first {LIST_PAGE}) {q_small} at "
            f"{SMALL_TEAM_JOBS} jobs, {q_list} at {TEAM_JOBS:,}; create {q_create_multipart} "
            f"multipart, {q_create_json} JSON image_id (warm: the token stamp and ETA medians are "
            f"cached for a minute)"
        )
        print(
            f"create, local engine, in-process, excluding the provider call by construction (the "
            f"render is a queued task): multipart 640×400 PNG p50 {create_p50:.1f} ms p95 "
            f"{ms(multipart, 0.95)} ms; JSON image_id p50 {json_p50:.1f} ms p95 "
            f"{ms(from_id, 0.95)} ms (n={args.creates} each); of which this process's CPU p50 "
            f"{ms(multipart_cpu, 0.5)} and {ms(from_id_cpu, 0.5)} ms, the rest waiting on "
            f"PostgreSQL (queries, the commit's fsync, the task's insert)"
        )
        print(f"job GET {get_ratio:.2f}× trivial (target ≥ {TARGET_GET}) {verdict(not missed_get)}")
        print(
            f"job list {list_ratio:.2f}× trivial (target ≥ {TARGET_LIST}), {q_small} → {q_list} "
            f"queries from {SMALL_TEAM_JOBS} to {TEAM_JOBS:,} jobs (target: constant) "
            f"{verdict(not missed_list)}"
        )
        print(
            f"api: create p50 {create_p50:.1f} ms multipart, {json_p50:.1f} ms JSON (target ≤ "
            f"{TARGET_CREATE_MS:g} ms) {verdict(not missed_create)}; "
            + ("MISSED a target" if targets_missed else "all targets met")
        )
    finally:
        setup.stop(server)
        from django.db import connections

        connections.close_all()
        setup.drop_database(DATABASE)


if __name__ == "__main__":
    main()
