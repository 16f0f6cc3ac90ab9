"""/metrics: off unless protected; the product's figures from the database at scrape time; the
engine's provider calls counted where they are made."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from studio.models import Job, JobState, LedgerEntry, WebhookDelivery, WebhookEndpoint
from studio.providers import http
from studio.providers.base import ProviderError
from tests.factories import make_job
from tests.receivers import free_port

S = JobState
TOKEN = "metrics-token-0123456789"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def samples(response) -> dict:
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_off_without_a_token_or_networks(client, db):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", **AUTH).status_code == 404


def test_a_missing_or_wrong_token_finds_nothing(client, db, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 404
    assert client.get("/metrics", **AUTH).status_code == 200


def test_allowed_networks_alone_or_with_the_token(client, db, settings):
    settings.METRICS_ALLOW_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics").status_code == 404  # the test client is 127.0.0.1
    settings.METRICS_ALLOW_NETWORKS = ["127.0.0.0/8"]
    assert client.get("/metrics").status_code == 200
    settings.METRICS_TOKEN = TOKEN  # both set: both needed
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", **AUTH).status_code == 200


def test_the_figures_come_from_the_database(client, personas, settings, django_assert_num_queries):
    settings.METRICS_TOKEN = TOKEN
    team, member = personas.team, personas.member
    make_job(team, member, state=S.QUEUED, price=3)
    make_job(team, member, state=S.QUEUED, price=4)
    overdue = make_job(team, member, state=S.RUNNING, price=5, provider="stability")
    Job.objects.filter(pk=overdue.pk).update(next_poll_at=timezone.now() - timedelta(seconds=42))
    make_job(team, member, state=S.SUCCEEDED, price=6)
    make_job(team, member, state=S.FAILED, price=7)
    endpoint = WebhookEndpoint.objects.create(
        team=team, url="https://hooks.example.com/", events=["job.succeeded"], secret="whsec_x"
    )
    for n, (state, attempts) in enumerate([("delivered", 1), ("delivered", 2), ("failed", 8)]):
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            message_id=f"msg_{n}",
            event="job.succeeded",
            payload={},
            state=state,
            attempts=attempts,
        )
    get_broker().enqueue("a signed task package")  # one task waiting in the ORM broker

    # Jobs (with the poll lag), the queue, deliveries, the ledger: four queries.
    with django_assert_num_queries(4) as captured:
        response = client.get("/metrics", **AUTH)
    # Prometheus scrapes every few seconds: reads only.
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in captured.captured_queries)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    found = samples(response)

    def jobs(state, provider="local"):
        return found.get(("studio_jobs", (("provider", provider), ("state", state))))

    assert jobs("queued") == 2
    assert jobs("running", "stability") == 1
    assert jobs("succeeded") == 1
    assert jobs("failed") == 1
    assert jobs("running") is None  # no such job, no series
    assert 42 <= found[("studio_job_poll_lag_seconds", ())] < 60
    assert found[("studio_task_queue_depth", ())] == 1
    assert found[("studio_webhook_deliveries", (("state", "delivered"),))] == 2
    assert found[("studio_webhook_deliveries", (("state", "failed"),))] == 1
    assert found[("studio_webhook_delivery_attempts_total", (("state", "delivered"),))] == 3
    # The ledger: every job reserved its price, the success captured, the failure released.
    assert found[("studio_credits_total", (("kind", "reserve"),))] == 3 + 4 + 5 + 6 + 7
    assert found[("studio_credits_total", (("kind", "capture"),))] == 6
    assert found[("studio_credits_total", (("kind", "release"),))] == 7
    for kind in ("reserve", "capture", "release"):
        in_ledger = sum(LedgerEntry.objects.filter(kind=kind).values_list("amount", flat=True))
        assert found[("studio_credits_total", (("kind", kind),))] == in_ledger


def test_no_active_job_means_no_lag(client, personas, settings):
    settings.METRICS_TOKEN = TOKEN
    make_job(personas.team, personas.member, state=S.SUCCEEDED)
    assert samples(client.get("/metrics", **AUTH))[("studio_job_poll_lag_seconds", ())] == 0


def _count(provider: str, status: str) -> float:
    labels = {"provider": provider, "status": status}
    return REGISTRY.get_sample_value("studio_provider_request_seconds_count", labels) or 0.0


def _errors(provider: str, kind: str) -> float:
    labels = {"provider": provider, "kind": kind}
    return REGISTRY.get_sample_value("studio_provider_request_errors_total", labels) or 0.0


def test_provider_calls_are_timed_by_provider_and_status(stability):
    """Real HTTP requests through the shared client to the Stability simulator."""
    ok, refused = _count("stability", "200"), _errors("stability", "401")
    assert http.send("Stability", stability.base_url, "GET", "/").status_code == 200
    answer = http.send(
        "Stability",
        stability.base_url,
        "GET",
        "/v2beta/image-to-video/result/abc",
        headers={"authorization": "Bearer sk-wrong"},
    )
    assert answer.status_code == 401
    assert _count("stability", "200") == ok + 1
    assert _count("stability", "401") >= 1
    assert _errors("stability", "401") == refused + 1
    with http.send_streaming("Stability", stability.base_url, "GET", "/") as response:
        response.read()
    assert _count("stability", "200") == ok + 2
    # No URL, no job: only these two labels.
    labels = {
        tuple(sorted(sample.labels))
        for metric in REGISTRY.collect()
        if metric.name == "studio_provider_request_seconds"
        for sample in metric.samples
    }
    assert labels <= {("provider", "status"), ("le", "provider", "status")}


def test_a_provider_nobody_answers_counts_as_a_connect_error(db):
    port = free_port()
    before = _errors("modelslab", "connect_error")
    with pytest.raises(ProviderError, match="could not be reached"):
        http.send("ModelsLab", f"http://127.0.0.1:{port}", "GET", "/")
    assert _errors("modelslab", "connect_error") == before + 1
    assert _count("modelslab", "connect_error") >= 1
    http.reset_clients()
