"""Workspace pages at 10,000 jobs (issue 9): each page beside a trivial view on the same server,
SQL queries per page at 10 and at 10,000 jobs, the CPU that 200 open job pages cost while they
poll, the ledger CSV's server time, and what submitting a 12-megapixel photo costs.

    .venv/bin/python bench/pages.py [--rounds 6] [--seconds 2] [--threads 4] [--pollers 200]
                                    [--poll-seconds 20] [--poll-rounds 3] [--submits 40]
                                    [--profile]

Everything runs against the benchmark's own PostgreSQL database `studio_bench_pages` (made,
migrated and dropped here), seeded as bench/api.py seeds it: one team holding 10,000 jobs over six
months with their ledger (about 20,000 rows), 208 of them still running so that 200 job pages can
poll distinct jobs, and a second team holding 10 jobs for the query counts.

- Throughput: gunicorn, 2 sync workers, DEBUG off, the product's URLs plus /bench/trivial/
  (bench/api_settings.py). Threads of this process, signed in with the owner's session cookie,
  keep the workers busy one page at a time for `--seconds`, in rounds whose order rotates so
  drifting noise hits every page alike. Ratios are requests per second over the trivial view's.
- Polling: `--pollers` clients each ask a running job's status partial every 2 s (as htmx does,
  with the ETag of the fragment they hold, as the browser's cache sends it; pages open a while,
  so each fetched its first fragment before the window), spread evenly, for `--poll-seconds`;
  the share of one core used by gunicorn and its PostgreSQL backends meanwhile. Then the
  trivial view polled alike: the floor any polled page stands on. `--poll-rounds` windows of
  each, alternating, as the machine's load drifts by several points from one to the next: the
  median is the figure, printed with the range.
- CSV: the team's whole ledger as CSV, one request at a time: the time to the last byte.
- Submit: the new-job form posted with a 4000×3000 JPEG (local engine; the render stays a queued
  task as no worker runs), one at a time through gunicorn. The target is the server's time after
  the last byte of a photo sent at 1 Gbit/s (the fastest link a person uploads over; the server
  checks the image as it arrives); beside it, the latency to the redirect on loopback, where the
  whole photo arrives at once.
- Queries: Django's test client in this process, warm, for every page at 10 and 10,000 jobs.

The figures and their targets are the last lines; a missed target says MISSED (exit status 0:
this is a measurement).
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_setup as setup  # noqa: E402
import api as seeding  # noqa: E402  (bench/api.py: the seeding and load helpers)

DATABASE = "studio_bench_pages"
RUNNING = 208  # 200 pollers, each on its own running job
TARGETS = {  # page: ratio to the trivial view
    "status partial": 0.3,
    "job page": 0.15,
    "dashboard": 0.1,
    "gallery p1": 0.1,
    "gallery p300": 0.1,
    "credits": 0.1,
}
TARGET_STATUS_QUERIES = 4
TARGET_POLL_CORE = 0.25
TARGET_CSV_MS, CSV_ROWS = 300.0, 20_000
TARGET_SUBMIT_MS = 30.0
LINK_BITS = 1e9  # the fastest link a photo is uploaded over: a wired office network
POLL_EVERY = 2.0


def seed(rng: random.Random):
    """Owner of the big team (10,000 jobs, RUNNING of them running) and of the small one (10)."""
    from django.db import connection

    from studio.billing.checks import ledger_problems

    owner = seeding.member("owner@bench.test", credits=5_000_000)
    creators = [owner.user] + [
        seeding.member(f"member{n}@bench.test", 0, team=owner.team).user for n in range(3)
    ]
    jobs = seeding.seed_jobs(owner.team, creators, seeding.TEAM_JOBS, rng, active=RUNNING)
    small = seeding.member("small@bench.test", credits=10_000)
    small_jobs = seeding.seed_jobs(small.team, [small.user], seeding.SMALL_TEAM_JOBS, rng)
    problems = ledger_problems()
    if problems:
        sys.exit("pages: the seeded ledger is inconsistent:\n  " + "\n  ".join(problems[:10]))
    with connection.cursor() as cursor:
        # What autovacuum gives a live database: statistics, and the visibility map that lets
        # the gallery's and the ledger's index-only scans skip the table.
        cursor.execute("VACUUM ANALYZE")
    return owner, jobs, small, small_jobs


def page_paths(team, jobs, rng: random.Random) -> dict[str, list[str]]:
    """Each measured page's paths (several jobs for the job pages, so no one row stays hot)."""
    running = [job for job in jobs if job.state == "running"]
    finished = [job for job in jobs if job.state == "succeeded" and job.video]
    base = f"/t/{team.slug}"
    return {
        "status partial": [f"{base}/jobs/{job.pk}/status/" for job in running[:50]],
        "job page": [f"{base}/jobs/{job.pk}/" for job in rng.sample(finished, 50)],
        "dashboard": [f"{base}/"],
        "gallery p1": [f"{base}/gallery/"],
        "gallery p300": [f"{base}/gallery/?page=300"],
        "credits": [f"{base}/credits/"],
    }


def browser_cookies(user) -> str:
    """The cookies a signed-in browser sends: the session's, and the CSRF secret that any page
    with a form (the job page's cancel button among them) gave it."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    client.get(f"/t/{user.memberships.first().team.slug}/jobs/new/")
    return "; ".join(
        f"{name}={client.cookies[name].value}"
        for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)
    )


class PageLoad(seeding.Load):
    """bench/api.py's load, signed in by session cookie instead of a token. Pages are asked for
    as a browser opens them; the status partial as htmx polls it (HX-Request), since a page
    asked with that header answers its swappable fragment, not what a person first loads."""

    def __init__(self, site: str, cookie: str, threads: int, server_pids, db_pids):
        super().__init__(site, "", threads, server_pids, db_pids)
        self.headers = {"Cookie": cookie}

    def headers_for(self, endpoint: seeding.Endpoint) -> dict[str, str]:
        if endpoint.name == "status partial":
            return self.headers | {"HX-Request": "true"}
        return self.headers


# --- In-process query counts ----------------------------------------------------------------
def queries(client, path: str, htmx: bool) -> tuple[int, list[str], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    client.get(path, **headers)  # warm: the session's current team, the ETA medians
    with CaptureQueriesContext(connection) as captured:
        answer = client.get(path, **headers)
        if hasattr(answer, "streaming_content"):
            b"".join(answer.streaming_content)
    if answer.status_code not in (200, 286):
        sys.exit(f"pages: GET {path} answered {answer.status_code}")
    writes = [q["sql"] for q in captured.captured_queries if not _is_read(q["sql"])]
    return len(captured), [q["sql"] for q in captured.captured_queries], len(writes)


def _is_read(sql: str) -> bool:
    # COPY (SELECT …) TO STDOUT: the ledger CSV on PostgreSQL; EXECUTE studio_member…: the team
    # pages' SELECT, prepared once per connection (studio.access).
    reads = ("SELECT", "SAVEPOINT", "RELEASE", "ROLLBACK", "COPY (", "EXECUTE STUDIO_MEMBER")
    return sql.lstrip().upper().startswith(reads)


def query_table(owner, jobs, small, small_jobs, rng) -> dict[str, tuple[int, int, int]]:
    """page → (queries at 10 jobs, at 10,000, writes at 10,000)."""
    from django.test import Client

    counts = {}
    big_paths = page_paths(owner.team, jobs, rng)
    small_running = [j for j in small_jobs if j.state in ("running", "queued")]
    small_done = [j for j in small_jobs if j.state == "succeeded" and j.video] or small_jobs
    base = f"/t/{small.team.slug}"
    small_paths = {
        "status partial": f"{base}/jobs/{small_running[0].pk}/status/",
        "job page": f"{base}/jobs/{small_done[0].pk}/",
        "dashboard": f"{base}/",
        "gallery p1": f"{base}/gallery/",
        "gallery p300": f"{base}/gallery/?page=300",  # past the end: the last page
        "credits": f"{base}/credits/",
        "ledger CSV": f"{base}/credits/ledger.csv",
    }
    big_paths["ledger CSV"] = [f"/t/{owner.team.slug}/credits/ledger.csv"]
    for name, small_path in small_paths.items():
        htmx = name == "status partial"
        small_client, big_client = Client(), Client()
        small_client.force_login(small.user)
        big_client.force_login(owner.user)
        few, _, _ = queries(small_client, small_path, htmx)
        many, sql, writes = queries(big_client, big_paths[name][0], htmx)
        counts[name] = (few, many, writes, sql)
    return counts


# --- Polling, CSV, submit -------------------------------------------------------------------
def poll_share(
    site, cookie, paths, pollers: int, seconds: float, pids
) -> tuple[float, int, int, int]:
    """Share of one core used by the server while `pollers` pages poll every 2 s, as browsers
    poll: each keeps the fragment's ETag and asks with If-None-Match; also the polls sent, those
    answered 304 and those that failed."""
    import httpx

    threads = 16
    sent, unchanged, failed = [0] * threads, [0] * threads, [0] * threads
    # The pages have been open a while: each already holds its fragment and ETag (its first
    # poll, a full answer, is a page's one-off cost and falls before the measured window).
    kept: dict[int, str] = {}
    with httpx.Client(base_url=site, headers={"Cookie": cookie, "HX-Request": "true"}) as client:
        for poller in range(pollers):
            etag = client.get(paths[poller % len(paths)]).headers.get("ETag")
            if etag:
                kept[poller] = etag
    began = time.perf_counter() + 0.5
    stop_at = began + seconds
    cpu0 = sum(setup.cpu_seconds(pid) for pid in pids)

    def worker(n: int) -> None:
        mine = list(range(n, pollers, threads))
        headers = {"Cookie": cookie, "HX-Request": "true"}
        with httpx.Client(base_url=site, headers=headers, timeout=10) as client:
            tick = 0
            while True:
                for poller in mine:  # each poller's own phase within the 2 s period
                    at = began + tick * POLL_EVERY + POLL_EVERY * poller / pollers
                    if at >= stop_at:
                        return
                    pause = at - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    # each page's ETag, sent back as a browser's cache does
                    asked = {"If-None-Match": kept[poller]} if poller in kept else {}
                    answer = client.get(paths[poller % len(paths)], headers=asked)
                    if "ETag" in answer.headers:
                        kept[poller] = answer.headers["ETag"]
                    sent[n] += 1
                    unchanged[n] += answer.status_code == 304
                    failed[n] += answer.status_code not in (200, 304)
                tick += 1

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    wall = time.perf_counter() - began
    cpu = sum(setup.cpu_seconds(pid) for pid in pids) - cpu0
    return cpu / wall, sum(sent), sum(unchanged), sum(failed)


def csv_times(site, cookie, path: str, count: int) -> tuple[list[float], int]:
    import httpx

    times, rows = [], 0
    with httpx.Client(base_url=site, headers={"Cookie": cookie}, timeout=60) as client:
        for _ in range(count):
            began = time.perf_counter()
            answer = client.get(path)
            times.append(time.perf_counter() - began)
            if answer.status_code != 200:
                sys.exit(f"pages: the CSV answered {answer.status_code}")
            rows = answer.text.count("\n") - 1
    return times, rows


def jpeg_12mp() -> bytes:
    """A 4000×3000 photo-like JPEG (noise over gradients, so it compresses like a photo)."""
    from PIL import Image, ImageFilter

    small = Image.effect_noise((1000, 750), 60).convert("RGB")
    image = small.resize((4000, 3000)).filter(ImageFilter.SMOOTH)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def paced_post(site: str, path: str, headers: dict, body: bytes) -> tuple[float, int]:
    """POST `body` over a socket at LINK_BITS, as a client on a real link sends it; the seconds
    from the last byte sent to the end of the answer (its status too). On loopback a whole photo
    arrives at once, which no client's upload does, so that the server's checks, which run as the
    bytes arrive, would all wait for the last one."""
    host, port = site.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1"] + [
        f"{name}: {value}" for name, value in headers.items() if name.lower() != "connection"
    ]
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(("\r\n".join(lines + ["Connection: close", "", ""])).encode())
        began = time.perf_counter()
        for start in range(0, len(body), 64 * 1024):
            pause = began + start * 8 / LINK_BITS - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sock.sendall(body[start : start + 64 * 1024])
        sent = time.perf_counter()
        answer = b""
        while piece := sock.recv(65536):  # gunicorn's sync workers close after answering
            answer += piece
        done = time.perf_counter()
    return done - sent, int(answer.split(b" ", 2)[1])


def percents(shares: list[float]) -> str:
    return " / ".join(f"{100 * share:.1f}" for share in shares) + " %"


def decode_ms() -> tuple[float, float]:
    """What this machine takes to decode the photo, whole and at 1/8 scale (as the upload check
    does), best of 5: the yardstick for the submit's absolute target (the issue measured 76 ms
    whole)."""
    from PIL import Image

    photo = jpeg_12mp()
    best = []
    for eighth in (False, True):
        times = []
        for _ in range(5):
            began = time.perf_counter()
            image = Image.open(io.BytesIO(photo))
            if eighth:
                image.draft("RGB", (image.width // 8, image.height // 8))
            image.load()
            times.append(time.perf_counter() - began)
        best.append(1000 * min(times))
    return best[0], best[1]


def submit_times(site, cookie, team_slug: str, count: int) -> tuple[list[float], list[float], int]:
    """New-job form posts with a 12 MP JPEG, one at a time: latency to the redirect on loopback,
    and the server's time after the last byte of the same post sent at LINK_BITS, alternately."""
    import httpx

    photo = jpeg_12mp()
    form_path = f"/t/{team_slug}/jobs/new/"
    with httpx.Client(base_url=site, headers={"Cookie": cookie}, timeout=30) as client:
        page = client.get(form_path).text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        fields = {
            "csrfmiddlewaretoken": token,
            "provider": "local",
            "model": "camera-motion-v1",
            "duration": "5",
            "motion": "zoom_in",
            "resolution": "720p",
        }
        request = client.build_request(
            "POST",
            form_path,
            data=fields,
            files={"image": ("phone.jpg", photo, "image/jpeg")},
            headers={"Referer": site + form_path},
        )
        body, headers = request.read(), dict(request.headers)
        loopback, paced = [], []
        for n in range(count + 3):
            began = time.perf_counter()
            answer = client.post(form_path, content=body, headers=headers)
            spent = time.perf_counter() - began
            after_last_byte, status = paced_post(site, form_path, headers, body)
            for code, text in ((answer.status_code, answer.text[:400]), (status, "")):
                if code != 302:
                    sys.exit(f"pages: the form answered {code}: {text}")
            if n >= 3:  # warm
                loopback.append(spent)
                paced.append(after_last_byte)
    return loopback, paced, len(photo)


# --- Main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=2.0, help="per page and round")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--pollers", type=int, default=200)
    parser.add_argument("--poll-seconds", type=float, default=20.0)
    parser.add_argument("--poll-rounds", type=int, default=3)
    parser.add_argument("--csvs", type=int, default=8)
    parser.add_argument("--submits", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="profile the missed pages")
    args = parser.parse_args()
    rng = random.Random(9)
    port = seeding.free_port()
    site = f"http://127.0.0.1:{port}"
    static_root = tempfile.mkdtemp(prefix=f"{DATABASE}-static-")
    env = seeding.configure_server(DATABASE, site, STATIC_ROOT=static_root)
    server = None
    try:
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from studio.billing.checks import ledger_problems
        from studio.models import LedgerEntry

        if settings.ROOT_URLCONF != "bench.api_urls" or settings.DEBUG:
            sys.exit("pages: expected the bench settings and DEBUG off")
        call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG off: the manifest
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        owner, jobs, small, small_jobs = seed(rng)
        seeded = time.monotonic() - started
        ledger_rows = LedgerEntry.objects.filter(team=owner.team).count()
        counts = query_table(owner, jobs, small, small_jobs, rng)
        paths = page_paths(owner.team, jobs, rng)
        cookie = browser_cookies(owner.user)
        connection.close()

        server = seeding.start_gunicorn(env, port)
        seeding.wait_for(site + "/bench/trivial/")
        pages = [seeding.Endpoint("trivial", ["/bench/trivial/"])] + [
            seeding.Endpoint(name, page_list) for name, page_list in paths.items()
        ]
        make_load = partial(PageLoad, site, cookie, args.threads)
        server_pids, db_pids = seeding.run_rounds(
            make_load, pages, server, DATABASE, args.rounds, args.seconds
        )
        all_running = [f"/t/{owner.team.slug}/jobs/{j.pk}/status/" for j in jobs]
        all_running = [p for p, j in zip(all_running, jobs, strict=True) if j.state == "running"]
        shares, floors, polls, polls_unchanged, poll_failures = [], [], 0, 0, 0
        for _ in range(args.poll_rounds):
            share, sent, unchanged, failures = poll_share(
                site, cookie, all_running, args.pollers, args.poll_seconds, server_pids + db_pids
            )
            shares.append(share)
            polls += sent
            polls_unchanged += unchanged
            poll_failures += failures
            # The floor beneath it: the trivial view (no session, query or template) polled alike.
            floor, _, _, _ = poll_share(
                site, cookie, ["/bench/trivial/"], args.pollers, args.poll_seconds, server_pids
            )
            floors.append(floor)
        share, floor = setup.percentile(shares, 0.5), setup.percentile(floors, 0.5)
        csv_path = f"/t/{owner.team.slug}/credits/ledger.csv"
        csv, csv_rows = csv_times(site, cookie, csv_path, args.csvs)
        submits, paced, photo_bytes = submit_times(site, cookie, owner.team.slug, args.submits)
        seeding.setup.stop(server)
        server = None
        load_after = os.getloadavg()[0]
        problems = ledger_problems()

        trivial = pages[0]
        print(
            f"seeded {seeding.TEAM_JOBS:,} + {seeding.SMALL_TEAM_JOBS} jobs ({RUNNING} running) "
            f"and {ledger_rows:,} ledger rows in {seeded:.1f} s; check_ledger after the run: "
            f"{len(problems)} problems"
        )
        print(
            f"load: gunicorn 2 sync workers, {args.threads} client threads, {args.rounds} rounds "
            f"× {args.seconds:g} s per page, signed in by session cookie, HX-Request on the "
            f"status partial only; {os.cpu_count()} CPUs shared by client, server and database, "
            f"load average {load_before:.1f} before, {load_after:.1f} after"
        )
        trivial_cpu = trivial.per_request_ms(trivial.app_cpu + trivial.db_cpu)
        missed = []
        for page in pages:
            cpu_ms = page.per_request_ms(page.app_cpu + page.db_cpu)
            ratio = page.rate / trivial.rate
            text = "1×" if page is trivial else f"{ratio:.3f}× trivial"
            if page is not trivial:
                text += f" (by server CPU {trivial_cpu / cpu_ms:.3f}×)"
                if ratio < TARGETS[page.name]:
                    missed.append(page.name)
            print(
                f"  {page.name:14} {page.rate:7.0f} req/s  {text}; p50 "
                f"{seeding.ms(page.serial, 0.5)} ms p95 {seeding.ms(page.serial, 0.95)} ms; "
                f"server CPU {page.per_request_ms(page.app_cpu):.2f} ms app + "
                f"{page.per_request_ms(page.db_cpu):.2f} ms db; {page.bytes:,} bytes; "
                f"{page.requests} requests, {page.errors} not 200"
            )
        print("queries per request (at 10 jobs → at 10,000 jobs; database writes at 10,000):")
        for name, (few, many, writes, sql) in counts.items():
            print(f"  {name:14} {few:3} → {many:3}; {writes} writes")
            if few != many or writes or (name == "status partial" and many > 4):
                missed.append(f"{name} queries")
                print("    " + "\n    ".join(s[:200] for s in sql))
        status_ok = counts["status partial"][1] <= TARGET_STATUS_QUERIES
        if args.profile or missed:
            client = Client()
            client.force_login(owner.user)
            for name in [m for m in missed if m in paths] or list(paths):
                path = paths[name][0]
                print("\n".join(seeding.profile(name, lambda p=path: client.get(p), 20)))
        csv_p50 = 1000 * setup.percentile(csv, 0.5)
        submit_p50 = 1000 * setup.percentile(submits, 0.5)
        paced_p50 = 1000 * setup.percentile(paced, 0.5)
        for name, target in TARGETS.items():
            page = next(p for p in pages if p.name == name)
            ratio = page.rate / trivial.rate
            met = seeding.verdict(ratio >= target)
            print(f"{name} {ratio:.3f}× trivial (target ≥ {target}) {met}")
        print(
            f"status partial {counts['status partial'][1]} queries, "
            f"{counts['status partial'][2]} writes (target ≤ {TARGET_STATUS_QUERIES}, none) "
            f"{seeding.verdict(status_ok and not counts['status partial'][2])}"
        )
        print(
            f"{args.pollers} pages polling every {POLL_EVERY:g} s, {args.poll_rounds} windows "
            f"of {args.poll_seconds:g} s: median {100 * share:.1f} % of one core (gunicorn + "
            f"PostgreSQL; target ≤ {100 * TARGET_POLL_CORE:.0f} %) "
            f"{seeding.verdict(share <= TARGET_POLL_CORE)}, windows {percents(shares)}; "
            f"{polls} polls, {polls_unchanged} of them 304, {poll_failures} failed; the trivial "
            f"view polled alike: median {100 * floor:.1f} %, windows {percents(floors)}"
        )
        print(
            f"ledger CSV of {csv_rows:,} rows: p50 {csv_p50:.0f} ms, max {1000 * max(csv):.0f} ms "
            f"to the last byte (target ≤ {TARGET_CSV_MS:g} ms for {CSV_ROWS:,}) "
            f"{seeding.verdict(csv_p50 <= TARGET_CSV_MS * max(1, csv_rows / CSV_ROWS))}"
        )
        full_ms, eighth_ms = decode_ms()
        ok_submit = paced_p50 <= TARGET_SUBMIT_MS
        print(
            f"submit with a 4000×3000 JPEG ({photo_bytes / 1e6:.1f} MB): server time after the "
            f"last byte, sent at {LINK_BITS / 1e9:g} Gbit/s: p50 {paced_p50:.1f} ms, p95 "
            f"{seeding.ms(paced, 0.95)} ms (target ≤ {TARGET_SUBMIT_MS:g} ms) "
            f"{seeding.verdict(ok_submit)}; on loopback, all at once: p50 {submit_p50:.1f} ms, "
            f"p95 {seeding.ms(submits, 0.95)} ms to the redirect; n={len(submits)} each; this "
            f"machine decodes the photo in {full_ms:.0f} ms whole, {eighth_ms:.0f} ms at 1/8 scale"
        )
        all_met = not missed and status_ok and share <= TARGET_POLL_CORE and ok_submit
        print("pages: " + ("all targets met" if all_met else "MISSED a target"))
    finally:
        setup.stop(server)
        from django.db import connections

        connections.close_all()
        setup.drop_database(DATABASE)
        shutil.rmtree(static_root, ignore_errors=True)


if __name__ == "__main__":
    main()
