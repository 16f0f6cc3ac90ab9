"""Idempotency-Key on job creation: the same key and request give the first answer and make
nothing more, even twenty at once; another request with the key is 422; one in flight is 409;
a refused request frees its key; keys are kept past 24 hours."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from studio.api import idempotency
from studio.api.tokens import create_token
from studio.models import IdempotencyKey, Job, LedgerEntry
from tests.conftest import FAST_PARAMS, make_image_bytes
from tests.racing import race

JOBS = "/api/v1/jobs"
BODY = {"provider": "local", "model": "camera-motion-v1", "params": FAST_PARAMS}


def poster(personas):
    raw = create_token(personas.membership(personas.member), "t", "rw")[1]

    def post(body, key, path=JOBS):
        return Client().post(
            path,
            data=body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {raw}",
            HTTP_IDEMPOTENCY_KEY=key,
        )

    return post


def with_image(personas, **more):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from studio.models import ImageUpload

    upload = ImageUpload(team=personas.team, width=640, height=400, size=1)
    upload.file.save("p.png", SimpleUploadedFile("p.png", make_image_bytes()), save=True)
    return BODY | {"image_id": str(upload.pk)} | more


@pytest.mark.django_db
def test_same_key_and_body_returns_the_first_answer_and_creates_nothing_more(personas):
    post, body = poster(personas), with_image(personas)
    first = post(body, "order-1")
    assert first.status_code == 201, first.content
    again = post(body, "order-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert Job.objects.count() == 1 and LedgerEntry.objects.filter(kind="reserve").count() == 1
    other = post(body | {"params": FAST_PARAMS | {"strength": 9}}, "order-1")
    assert other.status_code == 422
    assert other.json()["error"] == {
        "code": "idempotency_key_reused",
        "message": other.json()["error"]["message"],
        "field": "Idempotency-Key",
    }
    assert Job.objects.count() == 1
    assert post(body, "order-2").status_code == 201 and Job.objects.count() == 2


@pytest.mark.django_db
def test_keys_are_per_team(personas):
    body = with_image(personas)
    post = poster(personas)
    assert post(body, "k").status_code == 201
    from studio.billing import ledger

    ledger.grant(personas.outsider_team, 100, actor=None, reason="t")
    outsider = personas.outsider_team.memberships.get()
    raw = create_token(outsider, "t", "rw")[1]
    theirs = Client().post(
        JOBS,
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert theirs.status_code == 404  # their key is theirs: it is our image id that they lack


@pytest.mark.django_db
def test_in_flight_is_409_until_the_claim_goes_stale(personas):
    post, body = poster(personas), with_image(personas)
    digest = idempotency.request_digest("POST", JOBS, body, {})
    IdempotencyKey.objects.create(
        team=personas.team, key="k", request_digest=digest, started_at=timezone.now()
    )
    busy = post(body, "k")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert not Job.objects.exists()
    # The first request's process died mid-way: its claim lapses and a retry goes through.
    IdempotencyKey.objects.update(started_at=timezone.now() - timedelta(minutes=6))
    assert post(body, "k").status_code == 201 and Job.objects.count() == 1


@pytest.mark.django_db
def test_a_refused_request_frees_its_key(personas):
    post = poster(personas)
    from studio.billing import ledger

    ledger.adjust(personas.team, -1000, actor=None, reason="empty")
    body = with_image(personas)
    assert post(body, "k").status_code == 402
    assert not IdempotencyKey.objects.exists()
    ledger.grant(personas.team, 1000, actor=None, reason="topped up")
    assert post(body, "k").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a\x00b"])
def test_a_bad_key_is_refused_before_anything_happens(personas, key):
    answer = poster(personas)(with_image(personas), key)
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "Idempotency-Key"
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_keys_are_kept_a_day_and_swept_after_two(personas):
    assert poster(personas)(with_image(personas), "k").status_code == 201
    assert idempotency.sweep(timezone.now() + timedelta(hours=25)) == 0
    assert idempotency.sweep(timezone.now() + timedelta(hours=49)) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_at_once_make_one_job_and_one_reservation(personas):
    post, body = poster(personas), with_image(personas)
    answers = race([lambda: post(body, "burst") for _ in range(20)])
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {201, 409}, codes
    assert Job.objects.count() == 1
    assert LedgerEntry.objects.filter(kind="reserve").count() == 1
    job_id = str(Job.objects.get().pk)
    assert {a.json()["id"] for a in answers if a.status_code == 201} == {job_id}
    # And once settled, every retry gets that one job.
    assert post(body, "burst").json()["id"] == job_id


@pytest.mark.django_db
def test_the_periodic_sweep_forgets_keys_older_than_two_days(personas):
    from studio import tasks

    assert poster(personas)(with_image(personas), "old").status_code == 201
    assert poster(personas)(with_image(personas), "new").status_code == 201
    IdempotencyKey.objects.filter(key="old").update(started_at=timezone.now() - timedelta(hours=49))
    tasks.sweep()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]
