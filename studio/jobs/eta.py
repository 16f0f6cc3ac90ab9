"""When an active remote job should be done, and roughly how far along it is.

Where the finish time comes from, best first: the provider's own hint (`job.eta_at`); the median
run time (running → finished) of the provider's last successes with the same model; the
provider's typical run time (`estimated_run`). The local engine reports real frame progress, so
it gets no estimate. The median is cached per provider and model for a minute, in each process's
own memory: the job page polls its status every two seconds, and that costs at most one extra
query a minute per process.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import caches
from django.utils import timezone

from studio.models import Job, JobState
from studio.providers import PROVIDERS

RECENT_JOBS = 50
CACHE_SECONDS = 60
_MISSING = object()


@dataclass(frozen=True)
class Eta:
    at: datetime
    seconds_left: int  # 0 once the expected time has passed
    source: str  # "provider", "recent jobs" or "typical"
    progress: int  # percent, 0–99: the provider's own figure, else elapsed ÷ expected

    @property
    def minutes_left(self) -> int:
        return max(1, (self.seconds_left + 30) // 60)


def estimate(job: Job, now: datetime | None = None) -> Eta | None:
    provider = PROVIDERS.get(job.provider)
    if provider is None or not provider.remote or not job.is_active:
        return None
    now = now or timezone.now()
    if job.eta_at is not None:
        at, source = job.eta_at, "provider"
    else:
        run, source = recent_run_time(job.provider, job.model), "recent jobs"
        if run is None:
            run, source = provider.estimated_run(job), "typical"
        if not isinstance(run, timedelta):
            return None
        at = (job.running_at or now) + run  # not running yet: the run starts no sooner than now
    left = max(0, math.ceil((at - now).total_seconds()))
    return Eta(at, left, source, _progress(job, at, now))


def _progress(job: Job, at: datetime, now: datetime) -> int:
    """The provider's own figure, or the share of the expected run gone by, whichever is
    further: a figure reported once (AKOOL's "processing" callback) must not freeze the bar."""
    stored = min(99, job.progress or 0)
    if job.running_at is None:
        return stored
    expected = (at - job.running_at).total_seconds()
    if expected <= 0:
        return 99
    elapsed = (now - job.running_at).total_seconds()
    return max(stored, min(99, int(100 * elapsed / expected)))


def recent_run_time(provider_key: str, model: str) -> timedelta | None:
    """The median run time of the last RECENT_JOBS successes of this provider and model."""
    key = f"studio:eta:median:{provider_key}:{model}"
    seconds = caches["local"].get(key, _MISSING)
    if seconds is _MISSING:
        seconds = _median_seconds(provider_key, model)
        # None too: having no history is worth remembering
        caches["local"].set(key, seconds, CACHE_SECONDS)
    return None if seconds is None else timedelta(seconds=seconds)


def _median_seconds(provider_key: str, model: str) -> float | None:
    runs = (
        Job.objects.filter(
            provider=provider_key,
            model=model,
            state=JobState.SUCCEEDED,
            running_at__isnull=False,
            finished_at__isnull=False,
        )
        .order_by("-finished_at")
        .values_list("running_at", "finished_at")[:RECENT_JOBS]
    )
    durations = [max(0.0, (finished - started).total_seconds()) for started, finished in runs]
    return statistics.median(durations) if durations else None
