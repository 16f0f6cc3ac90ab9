"""Batch polling: how many AKOOL tasks one `resultsByIds` request answers for.

    .venv/bin/python bench/provider_batch.py [--jobs 2000] [--scale 1] [--batch-size 50]

2,000 AKOOL jobs are RUNNING at once on the AKOOL simulator (pro plan, token auth), seeded
straight into the simulator's task table and our database (thousands of real creates would
fetch thousands of images and measure nothing here). Their creation times are spread over one
poll interval before the start, as a steady stream of submissions would leave them, so polls
fall due evenly; each task queues 5 documented seconds and then runs a random 30–300. ONE
`run_engine` process (bench/_engine_setup.py) polls them against its own PostgreSQL database
`studio_bench_batch` (made and dropped here). No callbacks are sent: this measures polling.

Stubbed: copying a finished output (a django-q2 task on a worker) is replaced by marking the job
succeeded at once (`--stub-collect`).

Figures, from the simulator's log of resultsByIds requests:
- requests per job: status requests ÷ jobs, beside polls per job (task lookups ÷ jobs);
- mean batch size: task ids per request, over all requests and over the requests made while at
  least 20 jobs were due (target ≥ 20 jobs per status request when that many are due);
- poll lag p95 (a task's poll − its previous poll or creation − the pace) and violations.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_setup as setup  # noqa: E402

from tests.simulators.akool import AkoolPlan, AkoolSimulator, Task  # noqa: E402

DATABASE = "studio_bench_batch"
CLIENT_ID, CLIENT_SECRET = "bench-akool-id-0", "bench-akool-secret-0123456789abc"
QUEUE_SECONDS = 5.0
RUN_SECONDS = (30.0, 300.0)


def add_task(sim: AkoolSimulator, task_id: str, created: float, run: float) -> Task:
    """A 720p, 5 s task put straight into the simulator, as if created at `created`."""
    plan = AkoolPlan(queue_seconds=QUEUE_SECONDS, run_seconds=run)
    processing_at = created + sim.scaled(QUEUE_SECONDS)
    done_at = processing_at + sim.scaled(run)
    task = Task(
        id=task_id,
        plan=plan,
        request={"prompt": "", "negative_prompt": "", "audio_type": 3},
        created=created,
        create_time=int(time.time() * 1000),
        processing_at=processing_at,
        done_at=done_at,
        expires_at=done_at + sim.scaled(plan.retention_seconds),
        video_length=5,
        resolution="720p",
        deduction_credit=20,
        webhook=None,
        output_name=f"{uuid.uuid4().hex}.mp4",
    )
    with sim.lock:
        sim.tasks[task.id] = task
        sim._files[task.output_name] = task
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--scale", type=float, default=1.0, help="PROVIDER_TIME_SCALE")
    parser.add_argument("--batch-size", type=int, default=50, help="AKOOL_BATCH_SIZE")
    parser.add_argument(
        "--no-batch-fill",
        action="store_true",
        help="batched polls take only the jobs already due (to compare with the default)",
    )
    args = parser.parse_args()
    rng = random.Random(7)
    sim = AkoolSimulator(CLIENT_ID, CLIENT_SECRET, time_scale=args.scale).start()
    env = setup.configure(
        DATABASE,
        AKOOL_CLIENT_ID=CLIENT_ID,
        AKOOL_CLIENT_SECRET=CLIENT_SECRET,
        AKOOL_BASE_URL=sim.base_url,
        AKOOL_TOKEN_URL=sim.token_url,
        AKOOL_BATCH_SIZE=args.batch_size,
        PROVIDER_TIME_SCALE=args.scale,
    )
    engine = None
    try:
        from django.db.models import Count

        from studio.models import Job
        from studio.providers import PROVIDERS

        akool = PROVIDERS["akool"]
        pace = akool.pace.total_seconds()  # real seconds, time-scaled
        membership = setup.make_member(credits=20 * args.jobs)
        ids = [uuid.uuid4().hex[:24] for _ in range(args.jobs)]
        jobs = setup.seed_running_jobs(membership, akool, "image2video", ids)
        flags = ["--stub-collect"] + (["--no-batch-fill"] if args.no_batch_fill else [])
        engine = setup.start_engine(env, *flags)
        clock = setup.Clock()
        start = time.monotonic() + 2.0
        tasks = [
            add_task(sim, task_id, start - rng.uniform(0, pace), rng.uniform(*RUN_SECONDS))
            for task_id in ids
        ]
        setup.schedule(jobs, [clock.wall(task.created + pace) for task in tasks])

        give_up = start + sim.scaled(QUEUE_SECONDS + RUN_SECONDS[1]) + pace + 30
        while time.monotonic() < give_up:
            time.sleep(1.0)
            if not Job.objects.filter(state="running").exists():
                break
        elapsed = time.monotonic() - start
        setup.stop(engine)
        engine = None
        states = dict(Job.objects.values_list("state").order_by().annotate(n=Count("pk")))

        requests = [r for r in sim.requests if r.path.endswith("/resultsByIds")]
        sizes = list(sim.batch_sizes)
        polls = sum(sizes)
        waiting = _due_counts(tasks, pace, [request.at for request in requests])
        busy_sizes = [size for size, due in zip(sizes, waiting, strict=False) if due >= 20]
        lags = []
        for task in tasks:
            previous = task.created
            for at in task.poll_times:
                lags.append(at - (previous + pace))
                previous = at
        print(
            f"{args.jobs} AKOOL jobs, batch size {args.batch_size}"
            f"{', only jobs already due' if args.no_batch_fill else ''}, pace {pace:.1f} s; ran "
            f"{elapsed:.0f} s; job states {states}; {len(sizes)} resultsByIds requests for "
            f"{polls} task polls"
        )
        print(
            f"batch: requests per job {len(sizes) / args.jobs:.2f} vs polls per job "
            f"{polls / args.jobs:.2f}; mean batch size {statistics.fmean(sizes or [0]):.1f} "
            f"(max {max(sizes, default=0)}), while ≥ 20 were due "
            f"{statistics.fmean(busy_sizes or [0]):.1f} over {len(busy_sizes)} requests "
            f"(target ≥ 20); poll lag p50 {setup.percentile(lags, 0.5):.2f} s p95 "
            f"{setup.percentile(lags, 0.95):.2f} s; {len(sim.violations)} violations"
        )
        for violation in sim.violations[:5]:
            print("  violation:", violation[:200])
    finally:
        setup.tear_down(DATABASE, sim, engine)


def _due_counts(tasks: list[Task], pace: float, moments: list[float]) -> list[int]:
    """How many tasks were due and not yet polled at each of `moments` (sorted): each poll ends
    a wait that began when the task fell due (its previous poll, or creation, + the pace)."""
    events = []
    for task in tasks:
        previous = task.created
        for polled in task.poll_times:
            if polled > previous + pace:
                events += [(previous + pace, 1), (polled, -1)]
            previous = polled
    events.sort()
    counts, due, index = [], 0, 0
    for moment in moments:
        while index < len(events) and events[index][0] < moment:
            due += events[index][1]
            index += 1
        counts.append(due)
    return counts


if __name__ == "__main__":
    main()
