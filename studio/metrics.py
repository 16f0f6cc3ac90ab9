"""Prometheus metrics, two kinds, scraped two ways.

- Figures of the product (jobs by state and provider, poll lag, task queue depth, webhook
  deliveries by state, credits reserved/captured/released) are read from the database at scrape
  time by `StudioCollector`, so every web process gives the same answer: /metrics on the web
  (studio.views.health), protected by METRICS_TOKEN and/or METRICS_ALLOW_NETWORKS, off (404)
  when neither is set. Four cheap queries a scrape.
- What happens inside one process (provider request latency and errors, made in the engine's
  threads through studio.providers.http) is counted in that process's memory, in
  prometheus_client's default registry. `run_engine` serves that registry on METRICS_PORT when
  it is set: Prometheus scrapes each engine process on its own. (qcluster's forked workers,
  which copy outputs, would need prometheus_client's multiprocess mode: not done.)
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

# --- In-process instruments (the engine's provider calls) -------------------------------------
PROVIDER_LATENCY = Histogram(
    "studio_provider_request_seconds",
    "Provider HTTP requests: seconds until the answer (its headers, for a streamed one), by "
    "provider and HTTP status, or the transport error when no answer came.",
    ["provider", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
PROVIDER_ERRORS = Counter(
    "studio_provider_request_errors",
    "Provider requests that failed: an HTTP status of 400 or more, or a transport error "
    "(connect_error, timeout, transport_error).",
    ["provider", "kind"],
)

_provider_keys: dict[str, str] = {}


def provider_key(label: str) -> str:
    """A provider's key ("stability") from the label its adapter passes to the HTTP client;
    labels are constants of the code, so the label set stays small whatever happens."""
    if not _provider_keys:
        from studio.providers import PROVIDERS

        _provider_keys.update({p.label: p.key for p in PROVIDERS.values()})
    return _provider_keys.get(label, "other")


def observe_provider_call(label: str, seconds: float, status: int | str) -> None:
    """One provider request: `status` is the HTTP status code or a transport error kind."""
    provider = provider_key(label)
    status = str(status)
    PROVIDER_LATENCY.labels(provider, status).observe(seconds)
    if not status.isdigit() or int(status) >= 400:
        PROVIDER_ERRORS.labels(provider, status).inc()


_served_on: int | None = None
_serve_lock = threading.Lock()


def serve_process_metrics(port: int | None = None) -> int | None:
    """Serve this process's default registry (provider calls, process figures) on METRICS_PORT,
    on every interface, in a daemon thread; None when no port is set. At most once a process."""
    global _served_on
    port = port if port is not None else getattr(settings, "METRICS_PORT", None)
    if not port:
        return None
    with _serve_lock:
        if _served_on is None:
            from prometheus_client import start_http_server

            start_http_server(port)  # every interface: the scraper is on another host
            _served_on = port
            log.info("process metrics on port %d (/metrics)", port)
    return _served_on


# --- Figures from the database, at scrape time --------------------------------------------------
class StudioCollector:
    """Reads the product's figures at scrape time (no state in the process, so any web process
    answers alike)."""

    def collect(self):
        from django.db.models import Count, Min, Sum
        from django.utils import timezone

        from studio.models import Job, LedgerEntry, WebhookDelivery
        from studio.models.jobs import ACTIVE_STATES

        now = timezone.now()
        # 1. One GROUP BY over the (provider, state, next_poll_at) index: counts, and the most
        # overdue next_poll_at of each group for the poll lag.
        jobs = GaugeMetricFamily(
            "studio_jobs", "Jobs by state and provider.", labels=["state", "provider"]
        )
        overdue = None
        rows = (
            Job.objects.order_by()
            .values_list("state", "provider")
            .annotate(n=Count("*"), due=Min("next_poll_at"))
        )
        for state, provider, n, due in rows:
            jobs.add_metric([state, provider], n)
            if state in ACTIVE_STATES and due is not None:
                overdue = due if overdue is None else min(overdue, due)
        yield jobs
        lag = max(0.0, (now - overdue).total_seconds()) if overdue is not None else 0.0
        yield GaugeMetricFamily(
            "studio_job_poll_lag_seconds",
            "How overdue the most overdue active job's next look by the engine is (0: none).",
            value=lag,
        )
        # 2. The task queue (django-q2): one count on the ORM broker, LLEN on Redis.
        yield GaugeMetricFamily(
            "studio_task_queue_depth", "Tasks waiting in the django-q2 queue.", value=_queue_size()
        )
        # 3. Outbound webhook deliveries by state.
        deliveries = GaugeMetricFamily(
            "studio_webhook_deliveries",
            "Outbound webhook deliveries by state (pending, sending, delivered, failed).",
            labels=["state"],
        )
        attempts = CounterMetricFamily(
            "studio_webhook_delivery_attempts",
            "Attempts made at outbound webhook deliveries, by the delivery's state.",
            labels=["state"],
        )
        rows = (
            WebhookDelivery.objects.order_by()
            .values_list("state")
            .annotate(n=Count("*"), tries=Sum("attempts"))
        )
        for state, n, tries in rows:
            deliveries.add_metric([state], n)
            attempts.add_metric([state], tries or 0)
        yield deliveries
        yield attempts
        # 4. Credits moved by the ledger, by kind (append-only, so each sum only grows).
        credits = CounterMetricFamily(
            "studio_credits",
            "Credits reserved for jobs, captured on success and released otherwise (ledger sums); "
            "held = reserve - capture - release.",
            labels=["kind"],
        )
        kinds = {"reserve": 0, "capture": 0, "release": 0}
        rows = (
            LedgerEntry.objects.order_by()
            .filter(kind__in=list(kinds))
            .values_list("kind")
            .annotate(total=Sum("amount"))
        )
        kinds.update({kind: total or 0 for kind, total in rows})
        for kind, total in kinds.items():
            credits.add_metric([kind], total)
        yield credits


def _queue_size() -> int:
    from studio.health import _broker

    try:
        return int(_broker().queue_size() or 0)
    except Exception:
        log.exception("could not read the task queue's size")
        return -1


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(StudioCollector())


def render() -> tuple[bytes, float]:
    """The exposition text of the database figures, and how long it took."""
    started = time.perf_counter()
    body = generate_latest(REGISTRY)
    return body, time.perf_counter() - started


# --- Who may scrape -------------------------------------------------------------------------
def enabled() -> bool:
    return bool(settings.METRICS_TOKEN or settings.METRICS_ALLOW_NETWORKS)


def token_matches(request) -> bool:
    """The request carries `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time)."""
    token = settings.METRICS_TOKEN
    if not token:
        return False
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def network_allowed(request) -> bool:
    """REMOTE_ADDR (the peer that connected: behind a proxy, the proxy) is in an allowed network."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(net, strict=False)
        for net in settings.METRICS_ALLOW_NETWORKS
    )


def may_scrape(request) -> bool:
    """Each protection that is set must pass: the token, the network, or both when both are."""
    token_ok = token_matches(request) if settings.METRICS_TOKEN else True
    network_ok = network_allowed(request) if settings.METRICS_ALLOW_NETWORKS else True
    return enabled() and token_ok and network_ok
