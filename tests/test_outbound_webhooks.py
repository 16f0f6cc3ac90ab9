"""Outbound webhooks: events recorded with the job moves that caused them, signed deliveries to
real receivers on 127.0.0.1, retries on the Standard Webhooks schedule, never twice after a 2xx."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from studio.billing import budgets, ledger
from studio.jobs.states import transition
from studio.models import DeliveryState, JobState, WebhookDelivery, WebhookEndpoint, WebhookEvent
from studio.outbound import delivery as sending
from studio.outbound.endpoints import create_endpoint
from studio.outbound.events import new_message_id
from studio.outbound.workers import deliver_due
from tests.factories import make_job
from tests.receivers import Receiver, closed_port_url

D, S, E = DeliveryState, JobState, WebhookEvent


@pytest.fixture(autouse=True)
def local_receivers(settings):
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]


@pytest.fixture
def receiver():
    with Receiver() as receiver:
        yield receiver


def endpoint_for(personas, url, events=tuple(E.values), team=None) -> WebhookEndpoint:
    if team is None:
        return create_endpoint(personas.membership(personas.owner), url, list(events))
    owner = team.memberships.owners().first()
    return create_endpoint(owner, url, list(events))


def pending_delivery(endpoint, event=E.JOB_SUCCEEDED, now=None) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        endpoint=endpoint,
        message_id=new_message_id(),
        event=event,
        payload={"type": event, "timestamp": "2025-01-01T00:00:00Z", "data": {"id": "x"}},
        next_attempt_at=now or timezone.now(),
    )


def events_of(endpoint) -> list[tuple[str, str]]:
    rows = endpoint.deliveries.order_by("pk").values_list("event", "payload")
    return [(event, payload["data"].get("state", "")) for event, payload in rows]


# --- Signing ----------------------------------------------------------------------------------
def test_a_delivery_is_signed_so_the_standard_webhooks_library_verifies_it(personas, receiver):
    endpoint = endpoint_for(personas, receiver.url, [E.JOB_SUCCEEDED])
    assert endpoint.secret.startswith("whsec_")
    job = make_job(personas.team, personas.member, state=S.SUCCEEDED)

    assert deliver_due(threads=1) == 1

    [request] = receiver.received
    message = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert message["type"] == "job.succeeded" and message["data"]["id"] == str(job.pk)
    assert message["data"]["state"] == "succeeded" and message["timestamp"].endswith("Z")
    sent = endpoint.deliveries.get()
    assert request.headers["webhook-id"] == sent.message_id
    assert request.headers["content-type"] == "application/json"
    assert (sent.state, sent.attempts, sent.last_status_code) == (D.DELIVERED, 1, 204)
    other = "whsec_" + "A" * 43 + "="
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


def test_a_delivered_message_is_not_sent_again_by_a_later_run(personas, receiver):
    endpoint = endpoint_for(personas, receiver.url)
    pending_delivery(endpoint)
    now = timezone.now()
    assert deliver_due(now, threads=1) == 1
    for later in (now, now + timedelta(minutes=2), now + timedelta(days=3)):
        assert deliver_due(later, threads=1) == 0
    assert len(receiver.received) == 1


# --- Recording events -------------------------------------------------------------------------
def test_job_moves_record_exactly_the_events_each_endpoint_subscribed_to(personas):
    starts = endpoint_for(personas, "http://127.0.0.1:9/a", [E.JOB_STARTED, E.JOB_SUCCEEDED])
    ends = endpoint_for(personas, "http://127.0.0.1:9/b", [E.JOB_FAILED, E.JOB_CANCELED])
    credits_only = endpoint_for(personas, "http://127.0.0.1:9/c", [E.CREDITS_LOW])
    off = endpoint_for(personas, "http://127.0.0.1:9/d")
    WebhookEndpoint.objects.filter(pk=off.pk).update(enabled=False)
    elsewhere = endpoint_for(personas, "http://127.0.0.1:9/e", team=personas.outsider_team)

    for state in (S.SUCCEEDED, S.FAILED, S.EXPIRED, S.CANCELED, S.SUBMITTING):
        make_job(personas.team, personas.member, state=state)

    assert events_of(starts) == [
        ("job.started", "running"),
        ("job.succeeded", "succeeded"),
        ("job.started", "running"),
        ("job.started", "running"),
    ]
    # Expiry is a failure too; the data's state says which.
    assert events_of(ends) == [
        ("job.failed", "failed"),
        ("job.failed", "expired"),
        ("job.canceled", "canceled"),
    ]
    assert not credits_only.deliveries.exists()
    assert not off.deliveries.exists() and not elsewhere.deliveries.exists()
    ids = list(WebhookDelivery.objects.values_list("message_id", flat=True))
    assert len(set(ids)) == len(ids) and all(i.startswith("msg_") for i in ids)


def test_no_event_is_recorded_when_the_move_is_rolled_back(personas):
    endpoint = endpoint_for(personas, "http://127.0.0.1:9/a")
    job = make_job(personas.team, personas.member, state=S.RUNNING)
    before = endpoint.deliveries.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert transition(job, S.RUNNING, S.FAILED, error="boom")
        assert endpoint.deliveries.count() == before + 1  # recorded with the move...
        raise RuntimeError("the surrounding transaction fails")
    assert endpoint.deliveries.count() == before  # ...and gone with it
    assert transition(job.pk, S.RUNNING, S.FAILED, error="boom")
    assert endpoint.deliveries.latest("pk").event == E.JOB_FAILED


def test_a_move_whose_event_cannot_be_recorded_does_not_happen(personas, monkeypatch):
    endpoint_for(personas, "http://127.0.0.1:9/a")
    job = make_job(personas.team, personas.member, state=S.RUNNING)

    def broken(*args, **kwargs):
        raise RuntimeError("the outbox is full")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        transition(job.pk, S.RUNNING, S.SUCCEEDED)
    job.refresh_from_db()
    assert job.state == S.RUNNING and not job.ledger.filter(kind="capture").exists()


def test_a_fault_in_the_job_payload_still_lets_the_job_move(personas, monkeypatch):
    import studio.api.payloads

    endpoint = endpoint_for(personas, "http://127.0.0.1:9/a", [E.JOB_FAILED])
    job = make_job(personas.team, personas.member, state=S.RUNNING)
    monkeypatch.setattr(studio.api.payloads, "job_data", lambda job: 1 / 0)
    assert transition(job.pk, S.RUNNING, S.FAILED, error="The provider refused it.")
    [failed] = endpoint.deliveries.all()
    assert failed.payload["data"] == {
        "id": str(job.pk),
        "state": "failed",
        "error": "The provider refused it.",
    }


def test_a_lost_race_records_no_event(personas):
    endpoint = endpoint_for(personas, "http://127.0.0.1:9/a")
    job = make_job(personas.team, personas.member, state=S.SUCCEEDED)
    count = endpoint.deliveries.count()
    assert not transition(job.pk, S.RUNNING, S.SUCCEEDED)  # a duplicated report
    assert endpoint.deliveries.count() == count


def test_a_move_for_a_team_without_endpoints_costs_one_webhook_query(personas):
    endpoint_for(personas, "http://127.0.0.1:9/b", team=personas.outsider_team)  # not this team
    job = make_job(personas.team, personas.member, state=S.RUNNING)
    with CaptureQueriesContext(connection) as queries:
        assert transition(job, S.RUNNING, S.SUCCEEDED)
    touching = [q["sql"] for q in queries if "studio_webhook" in q["sql"]]
    assert len(touching) == 1 and "studio_webhookendpoint" in touching[0]
    assert not WebhookDelivery.objects.exists()


def test_credits_low_is_recorded_once_a_month_with_the_figures(personas):
    endpoint = endpoint_for(personas, "http://127.0.0.1:9/a", [E.CREDITS_LOW])
    account = ledger.account(personas.team)
    account.low_balance_level = account.available + 10
    account.save(update_fields=["low_balance_level"])
    budgets.send_warnings(personas.team, None)
    budgets.send_warnings(personas.team, None)  # same month: no second warning, no second event
    [low] = endpoint.deliveries.all()
    assert low.event == "credits.low"
    assert low.payload["data"] == {
        "team": personas.team.slug,
        "available": account.available,
        "low_balance_level": account.available + 10,
    }


# --- Retries ----------------------------------------------------------------------------------
def test_a_failing_receiver_gets_every_retry_on_schedule_then_the_delivery_fails(personas):
    with Receiver(default=500, body=b"database down") as receiver:
        endpoint = endpoint_for(personas, receiver.url)
        start = timezone.now()
        sent = pending_delivery(endpoint, now=start)
        now, offsets = start, []
        for attempt in range(1, sending.MAX_ATTEMPTS + 1):
            assert deliver_due(now - timedelta(seconds=1), threads=1) == 0  # not yet
            assert deliver_due(now, threads=1) == 1
            sent.refresh_from_db()
            assert sent.attempts == attempt and sent.last_status_code == 500
            assert sent.last_error == "Answered 500: database down"
            offsets.append(now - start)
            if sent.state == D.FAILED:
                break
            now = sent.next_attempt_at
        assert sent.state == D.FAILED and sent.next_attempt_at is None
        assert len(receiver.received) == 8 and set(receiver.ids()) == {sent.message_id}
    assert [round(o.total_seconds()) for o in offsets] == [
        0,
        5,
        5 + 300,
        5 + 300 + 1800,
        5 + 300 + 1800 + 7200,
        5 + 300 + 1800 + 7200 + 18000,
        5 + 300 + 1800 + 7200 + 18000 + 36000,
        5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000,
    ]  # about 27.6 hours from the first attempt to the last
    assert deliver_due(now + timedelta(days=2), threads=1) == 0
    endpoint.refresh_from_db()
    assert endpoint.failing_since == start and endpoint.enabled


@pytest.mark.parametrize("trouble", ["timeout", "refused"])
def test_a_receiver_that_does_not_answer_is_retried_in_5_seconds(personas, settings, trouble):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    with Receiver([("sleep", 2, 200)]) as slow:
        url = slow.url if trouble == "timeout" else closed_port_url()
        sent = pending_delivery(endpoint_for(personas, url))
        now = timezone.now()
        deliver_due(now, threads=1)
    sent.refresh_from_db()
    assert (sent.state, sent.attempts, sent.last_status_code) == (D.PENDING, 1, None)
    assert sent.next_attempt_at == now + timedelta(seconds=5)
    expected = "No answer within 1 seconds." if trouble == "timeout" else "Could not connect"
    assert sent.last_error.startswith(expected)


def test_a_sender_killed_mid_send_is_followed_by_the_same_message_once_its_lease_ends(
    personas, receiver
):
    sent = pending_delivery(endpoint_for(personas, receiver.url))
    now = timezone.now()
    [dead] = sending.claim_due(now)  # claimed, then the worker dies before sending
    lease_end = now + timedelta(seconds=15 + 30)
    assert deliver_due(lease_end - timedelta(seconds=1), threads=1) == 0
    assert deliver_due(lease_end, threads=1) == 1
    assert receiver.ids() == [sent.message_id]
    sent.refresh_from_db()
    assert (sent.state, sent.attempts) == (D.DELIVERED, 2)
    assert sending.send(dead) is None  # the dead claim, were it to wake up, sends nothing
    assert len(receiver.received) == 1


# --- Endpoint health --------------------------------------------------------------------------
def test_an_endpoint_failing_for_days_is_disabled_and_its_owners_told(
    personas, settings, mailoutbox, django_capture_on_commit_callbacks, client_for
):
    settings.WEBHOOK_DISABLE_AFTER_DAYS = 3
    with Receiver(default=503) as receiver:
        endpoint = endpoint_for(personas, receiver.url)
        start = timezone.now()
        pending_delivery(endpoint, now=start)
        deliver_due(start, threads=1)
        endpoint.refresh_from_db()
        assert endpoint.failing_since == start and endpoint.enabled
        almost = start + timedelta(days=3) - timedelta(minutes=1)
        pending_delivery(endpoint, now=almost)
        deliver_due(almost, threads=1)
        endpoint.refresh_from_db()
        assert endpoint.enabled  # not quite 3 days yet
        waiting = pending_delivery(endpoint, now=almost + timedelta(hours=1))
        day3 = start + timedelta(days=3)
        with django_capture_on_commit_callbacks(execute=True):
            deliver_due(day3, threads=1)
        sent_before = len(receiver.received)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_at == day3
    assert "every delivery has failed since" in endpoint.disabled_reason
    assert "Answered 503" in endpoint.disabled_reason
    waiting.refresh_from_db()
    assert waiting.state == D.FAILED and waiting.last_error == "Stopped: the endpoint was disabled."
    assert deliver_due(day3 + timedelta(days=1), threads=1) == 0
    assert len(receiver.received) == sent_before
    [mail] = mailoutbox
    assert mail.to == ["owner@a.test"] and receiver.url in mail.body
    page = client_for(personas.owner).get(f"/t/{personas.team.slug}/settings/")
    assert endpoint.disabled_reason in page.content.decode()


def test_a_success_clears_the_failing_mark(personas):
    with Receiver([500]) as receiver:
        endpoint = endpoint_for(personas, receiver.url)
        first = pending_delivery(endpoint)
        now = timezone.now()
        deliver_due(now, threads=1)
        endpoint.refresh_from_db()
        assert endpoint.failing_since == now
        deliver_due(now + timedelta(seconds=5), threads=1)
    first.refresh_from_db()
    endpoint.refresh_from_db()
    assert first.state == D.DELIVERED and endpoint.failing_since is None


def test_nothing_is_sent_to_a_disabled_endpoint(personas, receiver):
    endpoint = endpoint_for(personas, receiver.url)
    pending_delivery(endpoint)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    assert deliver_due(threads=1) == 0 and not receiver.received
    assert not sending.any_due()


# --- Send again -------------------------------------------------------------------------------
def test_send_again_sends_the_same_message_with_a_fresh_schedule(personas, receiver):
    endpoint = endpoint_for(personas, receiver.url)
    sent = pending_delivery(endpoint)
    assert not sending.send_again(sent)  # still waiting for its first attempt
    deliver_due(threads=1)
    sent.refresh_from_db()
    assert sending.send_again(sent)
    sent.refresh_from_db()
    assert (sent.state, sent.attempts) == (D.PENDING, 0)
    deliver_due(threads=1)
    assert receiver.ids() == [sent.message_id, sent.message_id]
    for request in receiver.received:
        Webhook(endpoint.secret).verify(request.body, request.headers)
    sent.refresh_from_db()
    assert (sent.state, sent.attempts) == (D.DELIVERED, 1)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    assert not sending.send_again(sent)


# --- Workers at once (PostgreSQL) -------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_senders_running_at_once_send_each_message_exactly_once(personas):
    with Receiver(default=("sleep", 0.05, 200)) as slow_ok:
        endpoints = [endpoint_for(personas, slow_ok.url) for _ in range(3)]
        sent = [pending_delivery(endpoints[i % 3]) for i in range(15)]
        barrier = threading.Barrier(6)

        def worker():
            barrier.wait()
            try:
                deliver_due(threads=2)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deliver_due(timezone.now() + timedelta(days=2), threads=1)  # and once more later
        ids = slow_ok.ids()
    assert sorted(ids) == sorted(d.message_id for d in sent)  # each once, none twice
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {D.DELIVERED}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_slow_receiver_does_not_hold_up_other_teams(personas, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    slow_answer = 1.0
    with Receiver(default=("sleep", slow_answer, 200)) as slow, Receiver() as fast:
        slow_endpoint = endpoint_for(personas, slow.url)
        for _ in range(8):
            pending_delivery(slow_endpoint)
        fast_endpoint = endpoint_for(personas, fast.url, team=personas.outsider_team)
        for _ in range(4):
            pending_delivery(fast_endpoint)
        assert deliver_due(threads=8) == 12
    first_slow_answer = min(r.at for r in slow.received) + slow_answer
    # Every fast delivery went out before the slow receiver had answered even once.
    assert max(r.at for r in fast.received) < first_slow_answer
    arrivals = sorted(r.at for r in slow.received)
    at_once = max(sum(1 for a in arrivals if t <= a < t + 1) for t in arrivals)
    assert at_once == sending.PER_ENDPOINT  # a slow endpoint holds a few threads, never all
    assert len(slow.received) == 8 and len(fast.received) == 4


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_committed_move_nudges_a_worker_that_sends_the_event(personas, receiver):
    endpoint = endpoint_for(personas, receiver.url, [E.JOB_CANCELED])
    job = make_job(personas.team, personas.member)  # queued
    assert transition(job, S.QUEUED, S.CANCELED)  # tests run tasks inline (django-q2 sync)
    [request] = receiver.received
    message = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert message["type"] == "job.canceled" and message["data"]["state"] == "canceled"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_engine_loop_sends_a_due_retry_without_waiting_for_the_sweep(personas, receiver):
    from studio.jobs.engine import Engine

    sent = pending_delivery(endpoint_for(personas, receiver.url))
    engine = Engine(threads=1)
    try:
        engine.tick_once()
        give_up = time.monotonic() + 5
        while not receiver.received and time.monotonic() < give_up:
            time.sleep(0.02)
    finally:
        engine.webhooks.shutdown()
        engine.pool.shutdown()
    assert receiver.ids() == [sent.message_id]
    body = json.loads(receiver.received[0].body)
    assert body == sent.payload
