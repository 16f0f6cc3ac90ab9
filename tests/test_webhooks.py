"""Inbound provider callbacks (studio.webhooks), through Django's test client: a callback is found
by the unguessable token in its URL and only wakes its job. It never moves a job's state, never
brings a poll closer than the provider's minimum spacing nor into a poll's lease, and no input
whatever makes it answer 500."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from studio.jobs.engine import POLL_LEASE
from studio.models import Job, JobState
from studio.providers.modelslab import ModelsLab
from studio.webhooks import MAX_CALLBACK_BYTES
from tests.factories import make_job

S = JobState
pytestmark = pytest.mark.django_db
INTERVAL = ModelsLab.poll_interval  # the usual pace of ModelsLab polls, unscaled
SPACING = ModelsLab.min_poll_interval  # the closest a callback may bring the next poll
FAR = timedelta(minutes=30)


@pytest.fixture(autouse=True)
def unscaled(settings):
    settings.PROVIDER_TIME_SCALE = 1.0
    settings.MODELSLAB_API_KEY = "ml-test-key"


@pytest.fixture
def client():
    return Client(raise_request_exception=False)  # a 500 is an answer to check, not an exception


def modelslab_job(personas, state, model="img2video_ultra", **fields):
    return make_job(
        personas.team,
        personas.member,
        state=state,
        provider="modelslab",
        model=model,
        params={"prompt": "waves", "resolution": 480},
        price=31,
        **fields,
    )


def url(job, provider="modelslab", token=None):
    return reverse("provider_callback", args=[provider, token or job.webhook_token])


def track_of(job):
    return job.pk.hex if job.model == "img2video_ultra" else job.pk.int % 2**53


def post(client, job, body, **kwargs):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(url(job, **kwargs), data, content_type="application/json")


def success(job, provider_id="4242"):
    return {"status": "success", "id": provider_id, "output": [], "track_id": track_of(job)}


def row(job):
    return Job.objects.filter(pk=job.pk).values()[0]


# --- Who may call -----------------------------------------------------------------------------
def test_an_unknown_provider_or_token_is_404(client, personas):
    job = modelslab_job(personas, S.RUNNING, provider_job_id="4242")
    before = row(job)
    assert post(client, job, success(job), provider="nobody").status_code == 404
    assert post(client, job, success(job), provider="stability").status_code == 404
    assert post(client, job, success(job), token="x" * 43).status_code == 404
    assert post(client, job, success(job), token="x" * 400).status_code == 404
    assert post(client, job, success(job), token=job.webhook_token[:-1]).status_code == 404
    assert row(job) == before


def test_only_post_is_allowed(client, personas):
    job = modelslab_job(personas, S.RUNNING, provider_job_id="4242")
    assert client.get(url(job)).status_code == 405
    assert client.put(url(job), "{}", content_type="application/json").status_code == 405


def test_a_body_over_64_kb_is_refused_unread(client, personas):
    job = modelslab_job(personas, S.RUNNING, provider_job_id="4242")
    before = row(job)
    body = json.dumps(success(job) | {"meta": "x" * MAX_CALLBACK_BYTES}).encode()
    assert post(client, job, body).status_code == 413
    assert row(job) == before


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe\x00", b"[1, 2]", b'"success"', b"null", b"[" * 60_000],
    ids=["empty", "text", "bytes", "list", "string", "null", "deep"],
)
def test_a_body_that_is_not_a_json_object_is_400(client, personas, body):
    job = modelslab_job(personas, S.RUNNING, provider_job_id="4242")
    before = row(job)
    assert post(client, job, body).status_code == 400
    assert row(job) == before


@pytest.mark.parametrize("model", ["img2video", "img2video_ultra"])
def test_a_track_id_that_is_not_the_jobs_is_400(client, personas, model):
    job = modelslab_job(personas, S.RUNNING, model=model, provider_job_id="4242")
    other = modelslab_job(personas, S.RUNNING, model=model, provider_job_id="4243")
    before = row(job)
    assert post(client, job, success(job) | {"track_id": track_of(other)}).status_code == 400
    assert row(job) == before
    assert post(client, job, success(job) | {"track_id": str(track_of(job))}).status_code == 200


# --- What a callback may change -------------------------------------------------------------
def test_a_callback_brings_a_running_jobs_poll_forward(client, personas):
    now = timezone.now()
    job = modelslab_job(
        personas,
        S.RUNNING,
        provider_job_id="4242",
        last_polled_at=now - timedelta(minutes=1),
        next_poll_at=now + INTERVAL - timedelta(seconds=1),
    )
    before = row(job)
    assert post(client, job, success(job)).status_code == 200
    after = row(job)
    assert before["next_poll_at"] > now and after["next_poll_at"] <= timezone.now()
    assert after | {"next_poll_at": None} == before | {"next_poll_at": None}  # nothing else


def test_never_closer_than_the_minimum_interval_after_the_last_poll(client, personas):
    now = timezone.now()
    polled = now - SPACING / 2
    job = modelslab_job(
        personas,
        S.RUNNING,
        provider_job_id="4242",
        last_polled_at=polled,
        next_poll_at=polled + INTERVAL,
    )
    assert post(client, job, success(job)).status_code == 200
    job.refresh_from_db()
    assert job.next_poll_at == polled + SPACING
    assert job.state == S.RUNNING and job.output_ref == ""


@pytest.mark.parametrize(
    "fields",
    [
        {"next_poll_at_in": POLL_LEASE},  # a poll holds the job (its lease)
        {"next_poll_at_in": FAR},  # backing off after errors
        {"next_poll_at_in": INTERVAL, "output_ref": "http://provider.test/v.mp4"},  # copying
    ],
    ids=["leased", "backing-off", "collecting"],
)
def test_a_held_or_collecting_job_is_not_woken(client, personas, fields):
    fields = dict(fields)
    due = timezone.now() + fields.pop("next_poll_at_in")
    job = modelslab_job(
        personas,
        S.RUNNING,
        provider_job_id="4242",
        last_polled_at=timezone.now() - timedelta(minutes=1),
        next_poll_at=due,
        **fields,
    )
    before = row(job)
    assert post(client, job, success(job)).status_code == 200
    assert row(job) == before


@pytest.mark.parametrize("model", ["img2video", "img2video_ultra"])
def test_a_job_awaiting_reconciliation_records_the_claimed_id_and_is_looked_at(
    client, personas, model
):
    now = timezone.now()
    job = modelslab_job(
        personas,
        S.SUBMITTING,
        model=model,
        outcome_unknown_at=now,
        deadline_at=now + FAR,
        next_poll_at=now + FAR,
    )
    assert post(client, job, success(job, provider_id=4242)).status_code == 200
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and job.provider_job_id == ""  # a fetch must confirm
    assert job.claimed_provider_id == "4242"
    assert job.next_poll_at <= timezone.now()
    # A second callback naming another id does not replace the first claim.
    assert post(client, job, success(job, provider_id=9999)).status_code == 200
    job.refresh_from_db()
    assert job.claimed_provider_id == "4242" and job.state == S.SUBMITTING


def test_a_job_still_being_submitted_keeps_its_lease(client, personas):
    lease = timezone.now() + timedelta(seconds=90)
    job = modelslab_job(personas, S.SUBMITTING, next_poll_at=lease)
    assert post(client, job, success(job)).status_code == 200
    job.refresh_from_db()
    assert job.next_poll_at == lease and job.state == S.SUBMITTING


def test_a_callback_without_an_id_claims_nothing(client, personas):
    now = timezone.now()
    job = modelslab_job(personas, S.SUBMITTING, outcome_unknown_at=now, next_poll_at=now + FAR)
    before = row(job)
    assert post(client, job, {"status": "success", "track_id": track_of(job)}).status_code == 200
    assert row(job) == before


@pytest.mark.parametrize("state", [S.SUCCEEDED, S.FAILED, S.EXPIRED, S.CANCELED])
def test_a_finished_job_is_unchanged(client, personas, state):
    job = modelslab_job(personas, state, provider_job_id="4242")
    before = row(job)
    for body in (success(job), {"status": "failed", "id": "4242", "track_id": track_of(job)}):
        assert post(client, job, body).status_code == 200
    assert row(job) == before


# --- Nothing makes it fail ------------------------------------------------------------------
HOSTILE = {
    "nul-raw": b'{"status": "success", "id": "12\x0034"}',
    "nul-escaped-id": b'{"status": "success", "id": "12\\u000034"}',
    "nul-escaped-track": b'{"status": "success", "id": 12, "track_id": "\\u0000"}',
    "nul-status": b'{"status": "\\u0000", "id": 12}',
    "5000-digit-id": b'{"status": "success", "id": ' + b"9" * 5000 + b"}",
    "5000-digit-track": b'{"status": "success", "id": 12, "track_id": ' + b"9" * 5000 + b"}",
    "4000-digit-id": b'{"status": "success", "id": ' + b"9" * 4000 + b"}",
    "huge-float": b'{"status": "success", "id": 1e999}',
    "nan": b'{"status": "success", "id": NaN}',
    "negative": b'{"status": "success", "id": -1}',
    "long-text-id": json.dumps({"status": "success", "id": "x" * 60_000}).encode(),
    "object-id": b'{"status": "success", "id": {"a": [1]}}',
    "bool-id": b'{"status": "success", "id": true}',
    "lone-surrogate": b'{"status": "success", "id": "\\ud800"}',
    "utf16": '{"status": "success", "id": 12}'.encode("utf-16"),
    "deep-object": b'{"a":' * 6_000 + b"1" + b"}" * 6_000,
}


@pytest.mark.parametrize("state", [S.RUNNING, S.SUBMITTING])
@pytest.mark.parametrize("body", list(HOSTILE.values()), ids=list(HOSTILE))
def test_no_body_makes_a_500(client, personas, state, body):
    now = timezone.now()
    extra = {"provider_job_id": "12"} if state == S.RUNNING else {"outcome_unknown_at": now}
    job = modelslab_job(personas, state, next_poll_at=now + FAR, **extra)
    answer = post(client, job, body)
    assert answer.status_code in (200, 400), answer.content[:300]
    job.refresh_from_db()
    assert job.state == state and job.provider_job_id == extra.get("provider_job_id", "")
    assert "\x00" not in job.claimed_provider_id


@pytest.mark.parametrize(
    "path",
    [
        "/hooks/modelslab/abc%00def/",
        "/hooks/modelslab/%00/",
        "/hooks/%00/abc/",
        "/hooks/modelslab/%C3%A9%F0%9F%98%80/",
        "/hooks/modelslab/%FF%FE/",
        "/hooks/modelslab/" + "a" * 5000 + "/",
    ],
)
def test_no_url_makes_a_500(client, personas, path):
    answer = client.post(path, b"{}", content_type="application/json")
    assert answer.status_code == 404


def test_a_lying_content_length_makes_no_500(client, personas):
    job = modelslab_job(personas, S.RUNNING, provider_job_id="4242")
    for length in ("-1", "abc", "1e9", "99999999999999999999999"):
        answer = client.post(
            url(job), b"{}", content_type="application/json", CONTENT_LENGTH=length
        )
        assert answer.status_code in (400, 413), (length, answer.status_code)
