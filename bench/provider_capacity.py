"""How many running provider jobs one engine process keeps polling on time.

    .venv/bin/python bench/provider_capacity.py [--jobs 5000] [--scale 1] [--threads 8]

5,000 Stability jobs are RUNNING at once on a Stability simulator with no account-wide rate limit
(and none on the engine's side either: `--unlimited-rate`), so what is measured is the
engine: ONE `run_engine` process (bench/_engine_setup.py, default
ENGINE_THREADS) against its own PostgreSQL database `studio_bench_capacity` (made and dropped
here). Each generation finishes after a random 30–300 documented seconds. Their creation times
are spread over one poll interval before the start, as a steady stream of submissions would
leave them, so polls fall due evenly (5,000 jobs ÷ 10 s = 500 polls/s at the start).

Stubbed: copying a finished output (a django-q2 task on a worker) is replaced by marking the job
succeeded at once (`--stub-collect`, see bench/_engine_setup.py): polling is what is measured.

Figures, from the simulator's request log (arrival times at the provider):
- poll lag: a poll's arrival − (the previous poll of that generation, or its creation, + the
  poll interval), in real seconds: how late past its due time the engine was (target p95 ≤ 1 s);
- polls/needed: polls a generation received ÷ ⌈run time ÷ poll interval⌉ (the fewest that can
  see it finish), averaged over generations (target ≤ 1.05);
- violations: contract breaches the simulator recorded (e.g. a poll sooner than 10 s).
"""

from __future__ import annotations

import argparse
import math
import random
import secrets
import statistics
import sys
import time
from collections import defaultdict, deque
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _engine_setup as setup  # noqa: E402

from tests.simulators import StabilitySimulator  # noqa: E402

DATABASE = "studio_bench_capacity"
KEY = "bench-stability-key"
POLL_INTERVAL = 10.0  # documented seconds
RUN_SECONDS = (30.0, 300.0)


class UnlimitedStability(StabilitySimulator):
    """The Stability simulator without its account-wide limit (150 per 10 s per key): its
    per-key window only ever holds the latest request, so it never counts past one. Every other
    rule stands (the 10 s spacing per generation, the key that started it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not hasattr(self, "_recent"):
            raise RuntimeError("StabilitySimulator changed: no _recent window to widen")
        self._recent = defaultdict(lambda: deque(maxlen=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--scale", type=float, default=1.0, help="PROVIDER_TIME_SCALE")
    parser.add_argument("--threads", type=int, default=None, help="ENGINE_THREADS (default 8)")
    parser.add_argument(
        "--dump", help="write every poll (arrival s, lag s, generation) to this file"
    )
    args = parser.parse_args()
    rng = random.Random(7)
    sim = UnlimitedStability(KEY, time_scale=args.scale).start()
    interval = sim.scaled(POLL_INTERVAL)  # real seconds
    env = setup.configure_stability(DATABASE, sim, args.scale, args.threads)
    engine = None
    try:
        from django.db import connection
        from django.db.models import Count
        from django.utils import timezone

        from studio.models import Job
        from studio.providers import PROVIDERS

        stability = PROVIDERS["stability"]
        membership = setup.make_member(credits=20 * args.jobs)
        runs = [rng.uniform(*RUN_SECONDS) for _ in range(args.jobs)]
        seeded_at = time.monotonic()
        ids = [secrets.token_hex(32) for _ in range(args.jobs)]
        jobs = setup.seed_running_jobs(membership, stability, "stable-video-diffusion", ids)
        seed_seconds = time.monotonic() - seeded_at

        engine = setup.start_engine(env, "--unlimited-rate", "--stub-collect")
        cpu_before = setup.cpu_seconds(engine.pid)
        clock = setup.Clock()
        start = time.monotonic() + 2.0  # the first polls fall due from here on
        generations = []
        for gid, run in zip(ids, runs, strict=True):
            generations.append(
                setup.add_stability_generation(sim, gid, start - rng.uniform(0, interval), run)
            )
        setup.schedule(jobs, [clock.wall(g.created + interval) for g in generations])
        late_start = max(0.0, time.monotonic() - start)

        # Watch until every job is finished (or well past the last one's run).
        give_up = start + sim.scaled(RUN_SECONDS[1]) + interval + 15
        backlog_peak, backlog_samples = 0, []
        while time.monotonic() < give_up:
            time.sleep(1.0)
            now = timezone.now()
            running = Job.objects.filter(state="running").count()
            overdue = Job.objects.filter(
                state="running", next_poll_at__lt=now - timedelta(seconds=1)
            ).count()
            backlog_peak = max(backlog_peak, overdue)
            backlog_samples.append(overdue)
            if running == 0:
                break
        ended = time.monotonic()
        elapsed = ended - start
        engine_cpu = setup.cpu_seconds(engine.pid) - cpu_before
        setup.stop(engine)
        engine = None
        states = dict(Job.objects.values_list("state").order_by().annotate(n=Count("pk")))
        connection.close()

        lags, ratios, unfinished = [], [], 0
        for generation in generations:
            previous = generation.created
            for at in generation.poll_times:
                lags.append(at - (previous + interval))
                previous = at
            if not generation.poll_times or generation.poll_times[-1] < generation.done_at:
                unfinished += 1
                # Its next poll, if ever, is at least this late: count it, or lag would flatter.
                lags.append(max(0.0, ended - (previous + interval)))
                continue
            needed = math.ceil(generation.plan.run_seconds / POLL_INTERVAL)
            ratios.append(generation.polls / needed)
        if args.dump:
            with open(args.dump, "w") as out:
                for generation in generations:
                    previous = generation.created
                    for at in generation.poll_times:
                        print(
                            f"{at - start:.3f} {at - previous - interval:.3f} {generation.id[:8]}",
                            file=out,
                        )
                        previous = at
        rejected = sum(1 for r in sim.requests if r.status == 429)
        polls = sum(g.polls for g in generations)
        print(
            f"seeded {args.jobs} jobs in {seed_seconds:.1f} s; schedule set "
            f"{late_start:.2f} s late; ran {elapsed:.0f} s; {polls} polls "
            f"({polls / elapsed:.0f}/s); engine CPU {engine_cpu:.0f} s "
            f"({engine_cpu / elapsed:.0%} of one core); overdue >1 s: peak {backlog_peak}, "
            f"mean {statistics.fmean(backlog_samples or [0]):.0f}; job states {states}"
        )
        print(
            f"lag p99 {setup.percentile(lags, 0.99):.2f} s, max {max(lags, default=0):.2f} s; "
            f"polls/needed max {max(ratios, default=0):.2f}; unfinished {unfinished}; "
            f"429 answers {rejected}; peak requests in a 10 s window "
            f"{sim.max_requests_in_window()}"
        )
        for violation in sim.violations[:5]:
            print("  violation:", violation[:200])
        from django.conf import settings

        scale_note = "" if args.scale == 1 else f" at time scale {args.scale:g}"
        print(
            f"capacity: {args.jobs} jobs{scale_note}, 1 engine × {settings.ENGINE_THREADS} "
            f"threads, poll lag p50 "
            f"{setup.percentile(lags, 0.5):.2f} s p95 {setup.percentile(lags, 0.95):.2f} s "
            f"(target ≤ 1 s), polls/needed {statistics.fmean(ratios or [math.nan]):.3f} "
            f"(target ≤ 1.05), {len(sim.violations)} violations"
        )
    finally:
        setup.tear_down(DATABASE, sim, engine)


if __name__ == "__main__":
    main()
