"""Wake-up latency: from the moment a provider finished a video until a member's job page shows it.

    .venv/bin/python bench/provider_wakeup.py [--jobs 30]

Everything runs for real, each in its own process, against the benchmark's own PostgreSQL
database `studio_bench_wakeup` (made and dropped here): the web server (gunicorn, DEBUG off), the
job engine loop (`manage.py run_engine`) and a django-q2 worker (`manage.py qcluster`, which copies
finished outputs). The ModelsLab simulator (img2video_ultra, standard plan: at most 10 jobs at the
provider at once) runs in this process at time scale 1 and posts its webhook to our /hooks/ URL
when a job finishes. 30 jobs are submitted through submit_job (as the form does), each running a
random 15–35 s at the provider.

A logged-in member's GET of the job's status partial (/t/<team>/jobs/<id>/status/, what the job
page's htmx polls every 2 s) is repeated every 0.2 s for each finished job until it holds
`<video`. Figures, in real seconds, p50 / p95 over the jobs:
- finished → visible: the simulator's finishing time → the first status answer with the video
  (target p95 ≤ 2 s plus the download; a browser adds up to its own 2 s polling on top);
- webhook → visible: from the webhook's delivery;
- finished → poll: until the engine's next fetch of the job at the provider;
- poll → succeeded: the copy (download, decode, poster) until the job row is succeeded.
Nothing is stubbed.
"""

from __future__ import annotations

import argparse
import io
import random
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_setup as setup  # noqa: E402

from tests.simulators import ModelsLabSimulator  # noqa: E402

DATABASE = "studio_bench_wakeup"
KEY = "bench-modelslab-key"
RUN_SECONDS = (15.0, 35.0)
GIVE_UP = 300.0  # real seconds after the submissions


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def png_1024x576() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((1024, 576)).convert("RGB")
    ImageDraw.Draw(image).ellipse((300, 150, 600, 450), fill=(220, 60, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def wait_for_http(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2.0)  # any answer will do (this one is 405)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    sys.exit(f"wake-up: the web server did not answer at {url}")


def p(values: list[float], share: float) -> str:
    return f"{setup.percentile(values, share):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    rng = random.Random(5)
    sim = ModelsLabSimulator(KEY, plan="standard", time_scale=1.0).start()
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    env = setup.configure(
        DATABASE,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PUBLIC_BASE_URL=site,
        MODELSLAB_API_KEY=KEY,
        MODELSLAB_BASE_URL=sim.base_url,
        MODELSLAB_PLAN="standard",
        PROVIDER_TIME_SCALE="1",
    )
    processes: list[subprocess.Popen] = []
    try:
        import httpx
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.db import connection
        from django.test import Client

        from studio.jobs.submit import submit_job
        from studio.models import Job
        from studio.providers import PROVIDERS

        venv_bin = Path(sys.executable).parent
        processes.append(
            subprocess.Popen(
                [str(venv_bin / "gunicorn"), "project.wsgi", "--bind", f"127.0.0.1:{port}"]
                + ["--workers", "2", "--threads", "4", "--log-level", "warning"],
                env=env,
                cwd=setup.ROOT,
            )
        )
        processes.append(
            subprocess.Popen([sys.executable, "manage.py", "qcluster"], env=env, cwd=setup.ROOT)
        )
        processes.append(setup.start_engine(env))
        wait_for_http(site + "/hooks/modelslab/probe/")  # renders no page: no static manifest

        membership = setup.make_member(credits=100 * args.jobs)
        browser = Client()
        browser.force_login(membership.user)
        cookies = {"sessionid": browser.cookies["sessionid"].value}
        for _ in range(args.jobs):
            run = rng.uniform(*RUN_SECONDS)
            sim.plan_next(run_seconds=run, eta=round(run))
        image = png_1024x576()
        params = {"model": "img2video_ultra", "prompt": "The balloon drifts slowly upwards."}
        jobs = [
            submit_job(
                membership, SimpleUploadedFile("p.png", image, "image/png"), "modelslab", params
            )
            for _ in range(args.jobs)
        ]
        by_track = {job.pk.hex: job for job in jobs}
        status_url = {job.pk: f"/t/{membership.team.slug}/jobs/{job.pk}/status/" for job in jobs}
        clock = setup.Clock()

        visible: dict = {}
        checked: dict = {}
        given_up = time.monotonic() + GIVE_UP
        failed: set = set()
        with httpx.Client(base_url=site, cookies=cookies, timeout=10.0) as web:
            while len(visible) + len(failed) < len(jobs) and time.monotonic() < given_up:
                now = time.monotonic()
                with sim.lock:
                    done = [j for j in sim.jobs.values() if j.done_at <= now]
                for sim_job in done:
                    job = by_track.get(str(sim_job.track_id))
                    if job is None or job.pk in visible or job.pk in failed:
                        continue
                    if now - checked.get(job.pk, 0.0) < 0.2:
                        continue
                    checked[job.pk] = now
                    answer = web.get(status_url[job.pk])
                    if "<video" in answer.text:
                        visible[job.pk] = time.monotonic()
                    elif answer.status_code == 286:  # terminal without a video
                        failed.add(job.pk)
                time.sleep(0.02)
        finished_at = dict(Job.objects.values_list("pk", "finished_at"))
        states = {job.pk: Job.objects.get(pk=job.pk).state for job in jobs}
        connection.close()

        to_visible, from_webhook, to_poll, to_copy = [], [], [], []
        with sim.lock:
            sim_jobs = list(sim.jobs.values())
            deliveries = list(sim.webhooks_sent)
        for sim_job in sim_jobs:
            job = by_track.get(str(sim_job.track_id))
            if job is None or job.pk not in visible:
                continue
            seen = visible[job.pk]
            to_visible.append(seen - sim_job.done_at)
            hooks = [d.at for d in deliveries if d.job_id == sim_job.id and d.status == 200]
            if hooks:
                from_webhook.append(seen - min(hooks))
            polls = [t for t in sim_job.poll_times if t >= sim_job.done_at]
            if polls:
                to_poll.append(polls[0] - sim_job.done_at)
                if finished_at.get(job.pk):
                    to_copy.append(clock.mono(finished_at[job.pk]) - polls[0])
        modelslab = PROVIDERS["modelslab"]
        closest = modelslab.figure(modelslab.min_poll_interval).total_seconds()
        pace = getattr(modelslab, "pace", None)  # the regular spacing, where the adapter has one
        pace = pace.total_seconds() if pace is not None else closest
        missing = [str(pk)[:8] + ":" + states[pk] for pk in states if pk not in visible]
        print(
            f"{len(visible)}/{len(jobs)} videos shown; {len(deliveries)} webhooks sent "
            f"({sum(1 for d in deliveries if d.status == 200)} answered 200); finished → next "
            f"poll p50 {p(to_poll, 0.5)} s p95 {p(to_poll, 0.95)} s max "
            f"{max(to_poll, default=0):.2f} s; poll → succeeded p50 {p(to_copy, 0.5)} s p95 "
            f"{p(to_copy, 0.95)} s; not shown: {missing or 'none'}"
        )
        for violation in sim.violations[:5]:
            print("  violation:", violation[:200])
        print(
            f"wake-up: {len(visible)} ModelsLab ultra jobs, finished → video visible p50 "
            f"{p(to_visible, 0.5)} s p95 {p(to_visible, 0.95)} s, webhook → visible p50 "
            f"{p(from_webhook, 0.5)} s p95 {p(from_webhook, 0.95)} s (target p95 ≤ 2 s + "
            f"download), polls every {pace:g} s, callbacks ≥ {closest:g} s after a poll, "
            f"{len(sim.violations)} violations"
        )
    finally:
        for process in reversed(processes):
            setup.stop(process)
        sim.stop()
        from django.db import connections

        connections.close_all()
        setup.drop_database(DATABASE)


if __name__ == "__main__":
    main()
