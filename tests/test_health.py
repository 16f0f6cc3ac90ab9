"""/healthz and /readyz: for load balancers, cheap, and telling outsiders nothing."""

import json
import logging
import time
import urllib.request

import pytest
from django.db import connection, connections
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage
from django_q.status import Stat, Status

from studio import health
from tests.receivers import free_port
from tests.worker import start_worker, stop_worker

TOKEN = "metrics-token-0123456789"


def cluster_running(cluster_id="test-cluster") -> None:
    """What a running qcluster's sentinel saves every half second (django_q.status.Stat.save),
    through the broker, with its three-second lifetime."""
    status = Status(pid=1234, cluster_id=cluster_id)
    status.status = Conf.IDLE
    get_broker().set_stat(Stat.get_key(cluster_id), SignedPackage.dumps(status, True), 3)


@pytest.fixture
def ready(db):
    health.beat_engine()
    cluster_running()


# --- /healthz -------------------------------------------------------------------------------
def test_healthz_answers_ok_without_a_query(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response["Cache-Control"] == "no-store"


def test_healthz_needs_no_database_at_all(client):
    """Without database access any query would raise here."""
    assert client.get("/healthz").content == b"ok"


def test_a_load_balancer_may_ask_by_ip_over_plain_http(client, settings, db):
    """Before the Host check and the HTTPS redirect: any other path is refused or redirected."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["studio.example.com"]
    assert client.get("/healthz", HTTP_HOST="10.0.3.7:8000").status_code == 200
    assert client.get("/readyz", HTTP_HOST="10.0.3.7:8000").status_code in (200, 503)
    assert client.get("/accounts/login/", HTTP_HOST="10.0.3.7:8000").status_code == 400
    redirected = client.get("/accounts/login/", HTTP_HOST="studio.example.com")
    assert redirected.status_code == 301


# --- /readyz --------------------------------------------------------------------------------
def test_readyz_is_ok_when_everything_answers(client, ready, django_assert_num_queries):
    # database SELECT 1, the ORM broker's table, the engine's beat, the clusters' list and
    # their statuses (the last three from the database cache); storage is a local folder.
    with django_assert_num_queries(5) as captured:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert response.cookies == {}  # no session was touched
    # A load balancer asks every few seconds: reads only.
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in captured.captured_queries)


def test_readyz_fails_without_an_engine_heartbeat_and_says_why_only_in_the_log(client, db, caplog):
    cluster_running()
    caplog.set_level(logging.WARNING, logger="studio.health")
    health._last_logged.clear()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.content == b"not ready"
    assert "engine" in caplog.text and "run_engine" in caplog.text


def test_readyz_fails_on_a_stale_engine_heartbeat(client, db):
    cluster_running()
    health.beat_engine(now=time.time() - health.ENGINE_STALE_AFTER - 5)
    assert client.get("/readyz").status_code == 503
    health.beat_engine()
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_without_a_running_cluster(client, db):
    health.beat_engine()
    assert client.get("/readyz").status_code == 503
    cluster_running()
    assert client.get("/readyz").status_code == 200


def test_readyz_fails_when_the_database_cannot_be_reached(client, ready, monkeypatch, caplog):
    """A real connection to a port nobody listens on (or, on SQLite, a file that cannot be)."""
    broken = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        broken["NAME"] = "/nonexistent-folder/db.sqlite3"
    else:
        broken.update(HOST="127.0.0.1", PORT=str(free_port()))
    unreachable = connections["default"].__class__(broken)  # a connection of its own
    monkeypatch.setattr(health, "connection", unreachable)
    caplog.set_level(logging.WARNING, logger="studio.health")
    health._last_logged.clear()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.content == b"not ready"  # no check, no error text for an anonymous caller
    assert "readiness check database failed: OperationalError" in caplog.text
    assert "Service Unavailable" not in caplog.text  # no ERROR line (nor error report) a probe

    # The metrics token's holder sees which check failed (and the others passing).
    response = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 503 and response.content == b"not ready"  # token unset
    from django.conf import settings

    settings.METRICS_TOKEN = TOKEN
    try:
        detailed = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    finally:
        settings.METRICS_TOKEN = ""
    body = detailed.json()
    assert detailed.status_code == 503
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is False
    assert "OperationalError" in body["checks"]["database"]["reason"]
    assert {name for name, c in body["checks"].items() if c["ok"]} == {
        "broker",
        "storage",
        "engine",
        "workers",
    }
    unreachable.close()


def test_a_wrong_token_gets_no_details(client, ready, settings):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/readyz", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert response.status_code == 200 and response.content == b"ok"


def test_a_failing_check_is_logged_once_then_again_after_a_while(db, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="studio.health")
    health._last_logged.clear()
    failing = {"engine": health.check_engine}
    for _ in range(3):
        assert not health.run_checks(failing).ok
    assert caplog.text.count("readiness check engine failed") == 1
    monkeypatch.setattr(health, "LOG_FAILURES_EVERY", 0.0)
    health.run_checks(failing)
    assert caplog.text.count("readiness check engine failed") == 2
    health.beat_engine()
    assert health.run_checks(failing).ok
    assert "readiness check engine passes again" in caplog.text


# --- The real processes ---------------------------------------------------------------------
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_readyz_follows_the_real_engine_and_cluster(client, monkeypatch):
    """`manage.py run_engine` and `manage.py qcluster` against the test database: /readyz turns
    ready once both run, the engine serves its own metrics on METRICS_PORT, and /readyz turns
    not ready when the engine stops beating."""
    monkeypatch.setattr(health, "ENGINE_STALE_AFTER", 3.0)
    port = free_port()
    engine = start_worker("run_engine", METRICS_PORT=str(port))
    cluster = start_worker("qcluster")
    try:
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up and client.get("/readyz").status_code != 200:
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 200
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"studio_provider_request_seconds" in scraped  # the engine's own registry
        assert b"process_cpu_seconds_total" in scraped
        stop_worker(engine)
        give_up = time.monotonic() + 15
        while time.monotonic() < give_up and client.get("/readyz").status_code == 200:
            time.sleep(0.2)
        assert client.get("/readyz").status_code == 503
        assert json.loads(json.dumps(health.run_checks().as_dict()))["checks"]["workers"]["ok"]
    finally:
        stop_worker(engine)
        stop_worker(cluster)
