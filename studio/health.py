"""Readiness checks for /readyz (studio.views.health): the database, the task broker, the file
storage, and whether the job engine loop and the qcluster workers were seen recently.

Each check is a function that raises when something is wrong; `run_checks()` runs them all and
says which failed and why. The reasons go to the log (and to a caller holding the metrics
token), never to an anonymous caller. Every check is cheap enough for a load balancer asking
every few seconds: on the ORM broker and the database cache, /readyz costs five small queries.

Heartbeats: the engine loop writes the time into the shared default cache (Redis with
REDIS_URL, else the database cache table) at most every ENGINE_BEAT_EVERY seconds. qcluster's
sentinel already saves its status (django_q.status.Stat) every half second with a three-second
lifetime, in Redis or in the same default cache: a fresh one is a running cluster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db import connection

log = logging.getLogger(__name__)

ENGINE_HEARTBEAT_KEY = "studio:engine:heartbeat"
ENGINE_BEAT_EVERY = 5.0  # seconds between two engine heartbeats
ENGINE_STALE_AFTER = 30.0  # an engine heartbeat older than this: the loop is stuck or gone
WORKERS_STALE_AFTER = 30.0  # a cluster status older than this is not a running cluster
STORAGE_PROBE_KEY = "health/probe"  # asked about, never written: the answer only shows it answers
LOG_FAILURES_EVERY = 60.0  # a check that keeps failing is logged again after this long


class NotReady(Exception):
    """A check's reason, written for the log."""


# --- Heartbeats -----------------------------------------------------------------------------
def beat_engine(now: float | None = None) -> None:
    """The engine loop is alive: record when (every engine process writes the same key, so the
    freshest beat of any of them counts)."""
    cache.set(ENGINE_HEARTBEAT_KEY, time.time() if now is None else now, timeout=3600)


def engine_heartbeat_age(now: float | None = None) -> float | None:
    """Seconds since an engine loop last beat, or None when none ever did (or long ago)."""
    beat = cache.get(ENGINE_HEARTBEAT_KEY)
    if beat is None:
        return None
    return max(0.0, (time.time() if now is None else now) - float(beat))


# --- Checks ---------------------------------------------------------------------------------
def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker():
    from django_q.brokers import get_broker

    global _BROKER
    if _BROKER is None:  # one per process: the Redis broker holds a connection pool
        _BROKER = get_broker()
    return _BROKER


_BROKER = None


def check_broker() -> None:
    """Redis answers PING (with REDIS_URL); otherwise the ORM broker's table can be read."""
    broker = _broker()
    if getattr(settings, "REDIS_URL", ""):
        if not broker.ping():
            raise NotReady("Redis did not answer PING")
        return
    from django_q.models import OrmQ

    OrmQ.objects.using(settings.Q_CLUSTER.get("orm", "default")).exists()


def check_storage() -> None:
    """The file storage answers (a missing probe key is fine): through the storage API only, so
    it works the same on a local folder and on S3 (one HEAD request there)."""
    default_storage.exists(STORAGE_PROBE_KEY)


def check_engine(now: float | None = None) -> None:
    age = engine_heartbeat_age(now)
    if age is None:
        raise NotReady("no job engine heartbeat: is `manage.py run_engine` running?")
    if age > ENGINE_STALE_AFTER:
        raise NotReady(f"the job engine last beat {age:.0f} s ago")


def cluster_stats() -> list:
    """The status every running qcluster saved (django_q.status.Stat), read without writing:
    Stat.get_all() rewrites the cache's list of clusters on every call, a write per probe."""
    from django_q.brokers import Broker
    from django_q.conf import Conf
    from django_q.signing import BadSignature, SignedPackage

    broker = _broker()
    if type(broker).get_stats is Broker.get_stats:  # kept in a Django cache (the ORM broker)
        store = broker.cache
        keys = (store.get(Conf.Q_STAT) or []) if store is not None else []
        packs = list(store.get_many(keys).values()) if keys else []
    else:  # kept in the broker itself (Redis)
        packs = broker.get_stats(f"{Conf.Q_STAT}:*") or []
    stats = []
    for pack in packs:
        try:
            stats.append(SignedPackage.loads(pack))
        except BadSignature:
            continue
    return stats


def check_workers() -> None:
    from django.utils import timezone
    from django_q.conf import Conf

    now = timezone.now()
    running = [
        stat
        for stat in cluster_stats()
        if stat.status not in (Conf.STOPPED, Conf.STOPPING)
        and (now - stat.timestamp).total_seconds() <= WORKERS_STALE_AFTER
    ]
    if not running:
        raise NotReady("no qcluster seen in the last few seconds: is `manage.py qcluster` running?")


CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
    "engine": check_engine,
    "workers": check_workers,
}


@dataclass
class Outcome:
    ok: bool
    seconds: float
    reason: str = ""


@dataclass
class Report:
    results: dict[str, Outcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.results.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, outcome in self.results.items() if not outcome.ok]

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ok else "not ready",
            "checks": {
                name: {"ok": o.ok, "ms": round(o.seconds * 1000, 1)}
                | ({"reason": o.reason} if o.reason else {})
                for name, o in self.results.items()
            },
        }


_last_logged: dict[str, float] = {}


def run_checks(checks: dict | None = None) -> Report:
    """Run every check (one failing does not skip the others) and log the failures: when a
    check starts failing, then at most every LOG_FAILURES_EVERY seconds while it goes on."""
    report = Report()
    for name, check in (checks or CHECKS).items():
        started = time.perf_counter()
        try:
            check()
        except Exception as error:
            reason = str(error) if isinstance(error, NotReady) else _describe(error)
            report.results[name] = Outcome(False, time.perf_counter() - started, reason)
            last = _last_logged.get(name)
            if last is None or time.monotonic() - last >= LOG_FAILURES_EVERY:
                _last_logged[name] = time.monotonic()
                log.warning("readiness check %s failed: %s", name, reason, extra={"check": name})
        else:
            report.results[name] = Outcome(True, time.perf_counter() - started)
            if _last_logged.pop(name, None) is not None:
                log.info("readiness check %s passes again", name, extra={"check": name})
    return report


def _describe(error: Exception) -> str:
    text = " ".join(str(error).split())[:300]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
