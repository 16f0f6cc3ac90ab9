"""AKOOL (image to video, and audio added to a finished video) through its simulator over real
HTTP: the simulator fetches our signed image and audio URLs and posts its signed, encrypted
callbacks to our app (pytest-django's live server). The whole life of a job, both ways of
authenticating and token renewal, every documented business code, batch polling, callbacks
that only wake a job (and forged ones that change nothing), plan gating, effects, custom audio,
added audio and remote deletion."""

import time
import uuid
from datetime import timedelta

import av
import httpx
import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from studio.billing.prices import quote
from studio.jobs import derived, engine
from studio.jobs.deletion import delete_provider_copies, delete_video
from studio.jobs.submit import JobRefused, submit_job
from studio.models import (
    AssetRole,
    EntryKind,
    IncidentKind,
    Job,
    JobState,
    ProviderIncident,
)
from studio.providers import PROVIDERS, akool_client
from studio.providers import akool as adapter
from studio.providers import akool_models as offer
from studio.providers.base import ProviderError
from studio.webhooks import callback_url
from tests.providers import (
    AKOOL_CLIENT_ID,
    AKOOL_CLIENT_SECRET,
    AKOOL_KEY,
    ledger_kinds,
    make_due,
    run_engine_until,
    settled,
    state_of,
    submit,
)
from tests.simulators.akool import (
    AUDIO_PATH,
    CREATE_PATH,
    DELETE_PATH,
    EFFECTS_PATH,
    RESULTS_PATH,
    TOKEN_PATH,
)
from tests.simulators.common import json_response

S = JobState
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
I2V = {
    "model": "image2video",
    "prompt": "the cat turns its head",
    "resolution": "720p",
    "video_length": "5",
    "audio_type": "none",
}
MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)


@pytest.fixture
def provider():
    return PROVIDERS["akool"]


@pytest.fixture
def slow_pace(monkeypatch):
    """A regular pace far longer than a job takes: only a callback can bring its poll forward."""
    monkeypatch.setattr(adapter.Akool, "poll_interval", timedelta(minutes=5))


def task_of(sim, job):
    job.refresh_from_db()
    return sim.tasks[job.provider_job_id]


def requests_to(sim, path):
    return [r for r in sim.requests if r.path == path]


def running(sim, member, image_upload, **params):
    """A job AKOOL is still making a minute from now, with no callback of its own."""
    sim.plan_next(run_seconds=3000, webhook="none")
    job = submit(member, image_upload(), "akool", **(I2V | params))
    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    job.refresh_from_db()
    return job


def snapshot(job):
    """What a callback must not change by itself (a wake only moves next_poll_at)."""
    return Job.objects.filter(pk=job.pk).values(
        "state",
        "provider_job_id",
        "claimed_provider_id",
        "output_ref",
        "error",
        "progress",
        "finished_at",
        "video",
        "next_poll_at",
    )[0]


def assert_playable_h264(job):
    with job.video.open("rb") as video, av.open(video) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) > 1
    assert job.poster and job.video_duration > 0 and job.video_bytes > 0


def audio_file(data=MP3, name="voice.mp3"):
    return SimpleUploadedFile(name, data, content_type="audio/mpeg")


# --- The whole life of a job ----------------------------------------------------------------
def test_a_job_woken_by_its_callback_ends_as_our_stored_video_charged_once(
    member, akool, provider, image_upload, live_server, slow_pace
):
    akool.plan_next(run_seconds=50)  # 1 s of real time; the regular pace would be 6 s
    job = submit(member, image_upload(size=(1200, 800)), "akool", **I2V)
    assert job.price_quoted == 20 and ledger_kinds(job) == [EntryKind.RESERVE]
    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    job.refresh_from_db()
    assert job.next_poll_at > timezone.now() + timedelta(seconds=4)

    task = task_of(akool, job)
    sent = task.request
    assert sent["image_url"].startswith(f"{live_server.url}/inputs/")
    assert sent["webhookurl"] == callback_url(job)
    assert (sent["prompt"], sent["negative_prompt"]) == ("the cat turns its head", "")
    assert (sent["resolution"], sent["video_length"], sent["audio_type"]) == ("720p", 5, 3)
    assert sent["extend_prompt"] is False and sent["is_premium_model"] is False
    assert "effect_code" not in sent and "audio_url" not in sent
    assert job.provider_credits_used == 20  # deduction_credit, as soon as AKOOL accepted it

    # The callback wakes the job long before its regular poll; the poll confirms the result.
    assert run_engine_until(lambda: settled(job), timeout=4)
    assert job.state == S.SUCCEEDED, job.error
    assert akool.wait_for_webhooks(1) and [d.status for d in akool.webhooks_sent] == [200]
    assert task.poll_times and task.poll_times[-1] >= task.done_at  # resultsByIds said "3"
    assert_playable_h264(job)
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert job.ledger.get(kind=EntryKind.CAPTURE).amount == 20
    assert job.provider_credits_used == 20
    assert not job.output_ref and job.output_format == "mp4"
    assert "webhookUrl" not in job.last_response and job.last_response["_id"] == task.id

    # Token auth: one getToken for the whole life, every call with the Bearer token.
    assert len(requests_to(akool, TOKEN_PATH)) == 1
    calls = [r for r in akool.requests if r.path.startswith("/api/open/v4/")]
    assert all(r.headers.get("authorization", "").startswith("Bearer ") for r in calls)
    assert not any("x-api-key" in r.headers for r in calls)
    assert akool.violations == []


def test_with_an_api_key_every_call_carries_x_api_key_and_no_token_is_fetched(
    member, akool, provider, image_upload, settings
):
    by_client = provider.key_fingerprint()
    settings.AKOOL_API_KEY = AKOOL_KEY
    assert provider.key_fingerprint() != by_client  # another credential, another account row
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert requests_to(akool, TOKEN_PATH) == []
    calls = [r for r in akool.requests if r.path.startswith("/api/open/v4/")]
    assert calls and all(r.headers.get("x-api-key") == AKOOL_KEY for r in calls)
    assert not any("authorization" in r.headers for r in calls)
    assert AKOOL_KEY not in str(job.last_response)
    assert akool.violations == []


def test_without_the_client_secret_no_callback_is_asked_for_any_is_refused_and_polls_finish(
    member, akool, provider, image_upload, settings
):
    settings.AKOOL_API_KEY = AKOOL_KEY
    settings.AKOOL_CLIENT_ID = settings.AKOOL_CLIENT_SECRET = ""
    assert provider.unavailable_reason() == ""
    job = running(akool, member, image_upload)
    task = task_of(akool, job)
    assert "webhookurl" not in task.request and task.webhook is None
    assert not provider.reconcilable(job)  # nothing could name a lost task
    before = snapshot(job)
    assert akool.send_webhook(task.id, url=callback_url(job)).status == 400
    assert snapshot(job) == before


def test_an_expired_token_is_renewed_once_and_the_job_carries_on(
    member, akool, provider, image_upload
):
    akool.plan_next(run_seconds=40)
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    fingerprint = Job.objects.get(pk=job.pk).key_fingerprint
    akool.expire_tokens()
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert len(requests_to(akool, TOKEN_PATH)) == 2  # the first, and one renewal
    assert any(r.status == 200 and r.path == RESULTS_PATH for r in akool.requests)
    assert job.key_fingerprint == fingerprint == provider.key_fingerprint()
    assert job.transient_errors == 0 and ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert akool.violations == []


# --- Every documented code on create --------------------------------------------------------
@pytest.mark.parametrize(
    ("codes", "said", "tokens"),
    [
        ([1003], "AKOOL refused the request: Parameter error", 1),
        ([1008], "AKOOL could not find the video this job refers to: Resource not found", 1),
        ([1009], "need a pro plan or above): No permission", 1),
        ([1101, 1101], "AKOOL refused our credentials (code 1101); staff have been told.", 2),
        ([1109, 1109], "AKOOL refused our credentials (code 1109); staff have been told.", 2),
        ([1102], "AKOOL received a request without credentials (code 1102); staff", 1),
        ([1200], "AKOOL has banned our account (code 1200); staff have been told.", 1),
    ],
)
def test_a_refused_create_fails_the_job_once_with_its_credits_returned(
    member, akool, image_upload, codes, said, tokens
):
    for code in codes:
        akool.plan_next(submit=code)
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and said in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert job.submit_attempts == 1 and akool.tasks == {}
    assert len(requests_to(akool, CREATE_PATH)) == len(codes)
    assert len(requests_to(akool, TOKEN_PATH)) == tokens
    assert akool.violations == []


@pytest.mark.parametrize("code", [1101, 1109])
def test_a_token_refused_once_is_renewed_and_the_create_sent_again(
    member, akool, image_upload, code
):
    akool.plan_next(submit=code)
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert len(requests_to(akool, TOKEN_PATH)) == 2 and len(akool.tasks) == 1
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert akool.violations == []


def test_a_create_that_failed_for_now_is_sent_again_later(member, akool, image_upload):
    akool.plan_next(submit=1015)
    job = submit(member, image_upload(), "akool", **I2V)
    job.refresh_from_db()
    assert job.state == S.QUEUED and "could not start the video just now" in job.status_note
    assert job.transient_errors == 1 and akool.tasks == {}
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert job.submit_attempts == 2 and len(akool.tasks) == 1
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert akool.violations == []


def test_an_unknown_code_is_permanent_and_named():
    refused = akool_client.refusal(1777, "Something new\x00")
    assert refused.permanent and str(refused) == "AKOOL answered code 1777: Something new"
    assert not akool_client.refusal(1015, "busy").permanent


def test_a_get_token_refusal_fails_the_job_and_tells_staff(member, akool, image_upload, settings):
    settings.AKOOL_CLIENT_SECRET = "x" * 32  # not the account's
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED
    assert job.error == (
        "AKOOL refused our client id and secret (code 1101); staff have been told. Your "
        "credits were returned."
    )
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE] and akool.tasks == {}
    assert akool.violations == []


def test_a_lost_create_answer_is_reconciled_by_the_callback_and_a_poll(member, akool, image_upload):
    akool.plan_next(submit="garbage", run_seconds=50)  # the task exists; its answer is lost
    job = submit(member, image_upload(), "akool", **I2V)
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and job.outcome_unknown_at and not job.provider_job_id
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN
    [task] = akool.tasks.values()
    assert akool.wait_for_webhooks(1) and akool.webhooks_sent[0].status == 200
    assert Job.objects.get(pk=job.pk).claimed_provider_id == task.id
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED and job.provider_job_id == task.id
    assert len(akool.tasks) == 1 and job.submit_attempts == 1  # sent once, ever
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert akool.violations == []


# --- Results --------------------------------------------------------------------------------
def test_a_failed_task_fails_the_job_with_akools_reason_and_a_refund(
    personas, member, akool, image_upload, client_for
):
    akool.plan_next(outcome="error", error_msg="GPU on fire")
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and job.error == "AKOOL could not make it: GPU on fire"
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    page = client_for(personas.member).get(f"/t/{personas.team.slug}/jobs/{job.pk}/")
    assert "GPU on fire" in page.content.decode() and "Refunded" in page.content.decode()
    assert akool.violations == []


def test_one_request_polls_a_batch_and_results_are_matched_by_id(
    member, akool, provider, image_upload, settings
):
    settings.AKOOL_BATCH_SIZE = 20
    for credit in range(45):  # each task reports its own deduction_credit
        akool.plan_next(run_seconds=3000, webhook="none", deduction_credit=100 + credit)
    jobs = [submit(member, image_upload(), "akool", **I2V) for _ in range(45)]
    assert Job.objects.filter(state=S.RUNNING).count() == 45
    time.sleep(0.05)  # the courtesy second since any earlier poll, scaled
    akool.batch_sizes.clear()
    polls_before = dict(Job.objects.values_list("pk", "poll_attempts"))
    Job.objects.update(next_poll_at=timezone.now())

    work = engine.claim_polls(provider, timezone.now())
    assert len(work) == 1 and len(work[0].args[1]) == 45  # one work item carries them all
    work[0]()
    assert akool.batch_sizes == [20, 20, 5]  # one resultsByIds per batch
    for job in jobs:
        job.refresh_from_db()
        task = akool.tasks[job.provider_job_id]
        assert job.last_response["_id"] == task.id
        assert job.poll_attempts == polls_before[job.pk] + 1
        assert job.provider_credits_used == task.deduction_credit
        assert job.transient_errors == 0 and job.state == S.RUNNING
    assert len({job.provider_credits_used for job in jobs}) == 45
    assert akool.violations == []


def test_jobs_about_to_fall_due_ride_along_to_fill_a_batch(
    member, akool, provider, image_upload, settings
):
    """A batch request goes out anyway: jobs due within a quarter of the pace fill it, rather
    than each needing a request moments later; a job backing off after an error never does."""
    settings.AKOOL_BATCH_SIZE = 20
    for _ in range(45):
        akool.plan_next(run_seconds=3000, webhook="none")
    jobs = [submit(member, image_upload(), "akool", **I2V) for _ in range(45)]
    now = timezone.now()
    soon = now + provider.pace * engine.BATCH_FILL_AHEAD / 2
    later = now + provider.pace
    due, riders, backing_off, far = jobs[:25], jobs[25:42], jobs[42:43], jobs[43:]
    Job.objects.update(last_polled_at=now - timedelta(seconds=5))
    Job.objects.filter(pk__in=[j.pk for j in due]).update(next_poll_at=now)
    Job.objects.filter(pk__in=[j.pk for j in riders + backing_off]).update(next_poll_at=soon)
    Job.objects.filter(pk__in=[j.pk for j in backing_off]).update(transient_errors=1)
    Job.objects.filter(pk__in=[j.pk for j in far]).update(next_poll_at=later)

    work = engine.claim_polls(provider, now)
    claimed = {job.pk for item in work for job in item.args[1]}
    assert len(claimed) == 40  # two full batches: the 25 due and 15 of the 17 about to be
    assert {j.pk for j in due} <= claimed
    assert not claimed & {j.pk for j in backing_off + far}


def test_refusals_of_a_poll_are_retried_until_the_deadline_not_failed_at_once(
    member, akool, image_upload
):
    job = running(akool, member, image_upload)
    akool.banned = True
    make_due(job)
    engine.tick()
    job.refresh_from_db()
    assert job.state == S.RUNNING and job.transient_errors == 1
    assert "has banned our account" in job.status_note and "Trying again" in job.status_note
    akool.banned = False
    make_due(job)
    engine.tick()
    job.refresh_from_db()
    assert job.state == S.RUNNING and job.transient_errors == 0


def test_busy_and_broken_answers_are_retried_and_a_create_answered_with_a_5xx_is_sent_again(
    member, akool, image_upload, monkeypatch
):
    answers = {
        "create": [json_response(503, {"message": "upstream"})],
        "results": [
            json_response(429, {"message": "slow down"}, {"retry-after": "0.1"}),
            json_response(500, {}),
        ],
    }
    real = {"create": akool._create, "results": akool._results}

    def answering(kind):
        def handler(request):
            return answers[kind].pop(0) if answers[kind] else real[kind](request)

        return handler

    monkeypatch.setattr(akool, "_create", answering("create"))
    monkeypatch.setattr(akool, "_results", answering("results"))
    job = submit(member, image_upload(), "akool", **I2V)
    job.refresh_from_db()
    assert job.state == S.QUEUED and "internal error (503)" in job.status_note
    assert run_engine_until(lambda: settled(job), timeout=20)
    assert job.state == S.SUCCEEDED, job.error
    assert answers == {"create": [], "results": []} and job.submit_attempts == 2
    assert len(akool.tasks) == 1 and ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert akool.violations == []


# --- Callbacks wake a job; only a poll changes it -------------------------------------------
def test_forged_tampered_badly_padded_and_misdirected_callbacks_change_nothing(
    member, akool, image_upload, live_server
):
    job = running(akool, member, image_upload)
    other = running(akool, member, image_upload)
    task, others = task_of(akool, job), task_of(akool, other)
    done = {"_id": task.id, "status": 3, "type": "image2video", "url": akool.file_url("x.mp4")}
    before = snapshot(job)

    assert akool.send_webhook(task.id, payload=done, forge=True).status == 400
    assert akool.send_webhook(task.id, payload=done, tamper=True).status == 400
    assert akool.send_webhook(task.id, payload=done, tamper="padding").status == 400
    # Genuine, but another job's task on this job's URL.
    assert akool.send_webhook(others.id, url=callback_url(job)).status == 400
    wrong_token = f"{live_server.url}/hooks/akool/{'x' * 43}/"
    assert akool.send_webhook(task.id, payload=done, url=wrong_token).status == 404
    for body in ({"json": ["x"]}, {"content": b"<html>\x00\xff{"}, {"json": {"signature": 1}}):
        assert httpx.post(callback_url(job), timeout=5, **body).status_code == 400

    assert snapshot(job) == before
    assert ledger_kinds(job) == [EntryKind.RESERVE]
    assert akool.violations == []


@pytest.mark.parametrize("mode", ["twice", "out_of_order"])
def test_duplicated_replayed_and_stale_genuine_callbacks_are_harmless(
    member, akool, image_upload, mode
):
    akool.plan_next(webhook=mode)
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert akool.wait_for_webhooks(2)
    before = snapshot(job)
    replay = akool.send_webhook(task_of(akool, job).id, replay_of=akool.webhooks_sent[0])
    assert replay.status == 200  # a replay only wakes, and a finished job has nothing to wake
    run_engine_until(lambda: False, timeout=0.3)
    assert snapshot(job) == before
    assert [d.status for d in akool.webhooks_sent] == [200, 200, 200]
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert akool.violations == []


def test_a_processing_callback_only_raises_progress(member, akool, image_upload, slow_pace):
    akool.plan_next(run_seconds=3000, processing_callbacks=True)  # done in a minute
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    assert akool.wait_for_webhooks(1)
    delivery = akool.webhooks_sent[0]
    assert delivery.payload["status"] == 2 and delivery.status == 200
    job.refresh_from_db()
    assert job.state == S.RUNNING and job.progress == 50
    assert job.next_poll_at > timezone.now() + timedelta(seconds=4)  # not woken
    # A poll that says "processing" keeps the figure; a replayed callback does not lower it.
    polls = job.poll_attempts
    make_due(job)
    engine.tick()
    job.refresh_from_db()
    assert job.progress == 50 and job.poll_attempts == polls + 1
    Job.objects.filter(pk=job.pk).update(progress=70)
    assert akool.send_webhook(task_of(akool, job).id, replay_of=delivery).status == 200
    assert Job.objects.get(pk=job.pk).progress == 70
    assert akool.violations == []


# --- Plans, effects, audio ------------------------------------------------------------------
def test_a_starter_plan_is_offered_neither_10_s_nor_premium_and_refused_them_with_the_plan(
    personas, member, akool, image_upload, client_for, settings
):
    settings.AKOOL_PLAN = "starter"
    client = client_for(personas.member)
    fields = client.get(f"/t/{personas.team.slug}/jobs/new/params/?provider=akool")
    html = fields.content.decode()
    assert 'name="video_length"' in html and 'value="10"' not in html
    assert "is_premium_model" not in html
    assert "10 s videos need an AKOOL pro plan or above." in html

    for extra, name in (
        ({"video_length": "10"}, "video_length"),
        ({"is_premium_model": "on"}, "is_premium_model"),
    ):
        with pytest.raises(JobRefused) as refused:
            submit(member, image_upload(), "akool", **(I2V | extra))
        [message] = refused.value.errors[name]
        assert "need an AKOOL pro plan or above; ours is starter." in message
    page = client.post(
        f"/t/{personas.team.slug}/jobs/new/",
        {"provider": "akool", **I2V, "video_length": "10", "image": image_upload()},
    )
    assert "10 s videos need an AKOOL pro plan or above; ours is starter." in page.content.decode()
    assert not Job.objects.exists() and akool.tasks == {}

    settings.AKOOL_PLAN = "pro"
    job = submit(
        member, image_upload(), "akool", **(I2V | {"video_length": "10", "is_premium_model": True})
    )
    assert job.price_quoted == 40
    assert run_engine_until(lambda: Job.objects.get(pk=job.pk).provider_job_id != "")
    sent = task_of(akool, job).request
    assert sent["video_length"] == 10 and sent["is_premium_model"] is True
    assert akool.violations == []


def test_effects_are_fetched_once_shown_checked_and_sent_with_the_prompt_fields(
    personas, member, akool, provider, image_upload, client_for
):
    client = client_for(personas.member)
    for _ in range(2):
        page = client.get(f"/t/{personas.team.slug}/jobs/new/params/?provider=akool")
        assert page.status_code == 200
    html = page.content.decode()
    assert 'value="hug"' in html and "Squish It" in html and 'name="effect_code"' in html
    context = provider.form_context("image2video")
    assert [e["code"] for e in context["effects"]] == ["squish", "inflate", "hug", "kiss"]
    assert context["effects"][0]["video_url"].startswith(akool.root_url)
    assert "effects_problem" not in context and provider.form_context("add-audio") == {}

    with pytest.raises(JobRefused) as refused:
        submit(member, image_upload(), "akool", **(I2V | {"effect_code": "moonwalk"}))
    assert refused.value.errors["effect_code"] == [
        "Effect must be one of: squish, inflate, hug, kiss."
    ]
    job = submit(member, image_upload(), "akool", **(I2V | {"prompt": "", "effect_code": "hug"}))
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    sent = task_of(akool, job).request
    assert sent["effect_code"] == "hug" and sent["prompt"] == "" and sent["negative_prompt"] == ""
    assert len(requests_to(akool, EFFECTS_PATH)) == 1  # cached for an hour
    with pytest.raises(JobRefused) as refused:
        submit(member, image_upload(), "akool", **(I2V | {"prompt": ""}))
    assert refused.value.errors["prompt"] == [
        "Describe how the picture should move, or choose an effect."
    ]
    assert akool.violations == []


def test_without_any_effects_list_an_effect_is_refused_and_the_last_good_list_outlives_a_failure(
    member, akool, provider, image_upload, monkeypatch
):
    real_effects = akool._effects
    monkeypatch.setattr(akool, "_effects", lambda request: json_response(503, {}))
    context = provider.form_context("image2video")
    assert context["effects"] == [] and "cannot be listed right now" in context["effects_problem"]
    with pytest.raises(JobRefused) as refused:
        submit(member, image_upload(), "akool", **(I2V | {"effect_code": "hug"}))
    assert "effects cannot be loaded just now" in refused.value.errors["effect_code"][0]
    assert len(requests_to(akool, EFFECTS_PATH)) == 1  # a failure is not retried at once

    monkeypatch.setattr(akool, "_effects", real_effects)
    cache.delete(offer.EFFECTS_FAILED_KEY)  # a minute later
    assert len(offer.effects()) == 4
    monkeypatch.setattr(akool, "_effects", lambda request: json_response(503, {}))
    cache.delete(offer.EFFECTS_KEY)  # an hour later, and AKOOL fails the refresh
    assert [e["code"] for e in offer.effects()] == ["squish", "inflate", "hug", "kiss"]
    assert len(requests_to(akool, EFFECTS_PATH)) == 3


def test_a_custom_audio_file_reaches_akool_through_its_signed_url(
    member, akool, image_upload, live_server
):
    params = I2V | {"audio_type": "upload"}
    job = submit_job(member, image_upload(), "akool", params, {"audio": audio_file()})
    asset = job.assets.get()
    assert asset.role == AssetRole.AUDIO and asset.content_type == "audio/mpeg"
    assert asset.file.name.endswith(".mp3") and "voice" not in asset.file.name
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    sent = task_of(akool, job).request
    assert sent["audio_type"] == 2 and sent["audio_url"].startswith(
        f"{live_server.url}/inputs/files/"
    )
    assert akool.violations == []  # the simulator fetched it (a failed fetch is a 1003)


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ({}, "Choose an audio file (MP3, WAV, M4A/AAC or OGG, at most 20 MB)."),
        (
            {"audio": audio_file(b"\x89PNG\r\n\x1a\n" + bytes(64), "voice.mp3")},
            "The audio file must be MP3, WAV, M4A/AAC or OGG audio of at most 20 MB",
        ),
        (
            {"audio": audio_file(b"ID3" + bytes(20 * 1024 * 1024))},
            "The audio file must be at most 20 MB",
        ),
    ],
    ids=["missing", "not-audio", "too-big"],
)
def test_an_audio_upload_that_is_missing_not_audio_or_too_big_is_refused(
    member, akool, image_upload, files, said
):
    with pytest.raises(JobRefused) as refused:
        submit_job(member, image_upload(), "akool", I2V | {"audio_type": "upload"}, files)
    assert said in refused.value.errors["audio"][0]
    assert not Job.objects.exists() and akool.tasks == {}


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"ID3\x04\x00", ("mp3", "audio/mpeg")),
        (b"\xff\xfb\x90\x64", ("mp3", "audio/mpeg")),
        (b"RIFF\x24\x08\x00\x00WAVEfmt ", ("wav", "audio/wav")),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00", ("m4a", "audio/mp4")),
        (b"\xff\xf1\x50\x80", ("aac", "audio/aac")),
        (b"OggS\x00\x02", ("ogg", "audio/ogg")),
        (b"\x00\x00\x00\x20ftypisom", None),  # an MP4 video
        (b"\xff\xd8\xff\xe0", None),  # a JPEG
        (b"", None),
    ],
)
def test_audio_is_recognised_by_its_content(head, kind):
    assert offer.sniff_audio(head + bytes(32) if head else b"") == kind


# --- Added audio ----------------------------------------------------------------------------
@pytest.mark.parametrize(("length", "audio", "price"), [("5", "ai", 5), ("10", "upload", 10)])
def test_audio_added_to_a_finished_video_is_sent_with_its_id_polled_and_priced(
    member, akool, provider, image_upload, live_server, length, audio, price
):
    source = submit(member, image_upload(), "akool", **(I2V | {"video_length": length}))
    assert run_engine_until(lambda: settled(source)) and source.state == S.SUCCEEDED
    files = {"audio": audio_file()} if audio == "upload" else {}
    job = derived.add_audio(member, source, {"audio_type": audio}, files)
    assert job.price_quoted == price and job.source_job_id == source.pk
    assert not provider.reconcilable(job)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    task = task_of(akool, job)
    assert task.only_add_audio and task.pre_video_id == source.provider_job_id
    assert task.webhook is None and task.polls >= 1
    [sent] = [r.json for r in requests_to(akool, AUDIO_PATH)]
    assert sent["audio_type"] == (1 if audio == "ai" else 2)
    if audio == "ai":
        assert sent["audio_url"] == ""
    else:
        assert sent["audio_url"].startswith(f"{live_server.url}/inputs/files/")
    assert job.provider_credits_used == price
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert_playable_h264(job)
    assert akool.violations == []


def test_a_lost_answer_to_added_audio_fails_at_once_with_a_refund(member, akool, image_upload):
    source = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(source)) and source.state == S.SUCCEEDED
    akool.plan_next(submit="garbage")
    job = derived.add_audio(member, source, {"audio_type": "ai"})
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "could not confirm that AKOOL received" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN


def test_prices_follow_the_table_and_added_audio_is_not_a_new_job_choice(provider, db):
    def price(model, **params):
        keys = provider.price_keys(model, params)
        return quote("akool", provider.priced_as(model), keys).amount

    assert price("image2video", resolution="720p", video_length="5") == 20
    assert price("image2video", resolution="1080p", video_length="5") == 25
    assert price("image2video", resolution="4k", video_length="10") == 60
    assert price("add-audio", audio_type="ai", video_length="5") == 5
    assert price("add-audio", audio_type="upload", video_length="10") == 10
    assert provider.model_choices() == [("image2video", "Image to video")]
    assert provider.model("add-audio").label == "Add audio"


def test_without_credentials_akool_says_which_settings_are_missing(provider, settings):
    settings.AKOOL_API_KEY = settings.AKOOL_CLIENT_ID = settings.AKOOL_CLIENT_SECRET = ""
    assert "AKOOL_API_KEY, or AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET" in (
        provider.unavailable_reason()
    )
    settings.AKOOL_CLIENT_ID = AKOOL_CLIENT_ID
    assert "AKOOL_CLIENT_SECRET is missing" in provider.unavailable_reason()
    settings.AKOOL_CLIENT_SECRET = AKOOL_CLIENT_SECRET
    assert provider.unavailable_reason() == ""


# --- Remote deletion ------------------------------------------------------------------------
def test_remote_delete_says_deleted_busy_or_gone(member, akool, provider, image_upload):
    done = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(done)) and done.state == S.SUCCEEDED
    busy = running(akool, member, image_upload)
    gone = running(akool, member, image_upload)
    Job.objects.filter(pk=gone.pk).update(provider_job_id="f" * 24)
    gone.refresh_from_db()
    never_sent = Job(pk=uuid.uuid4(), provider_job_id="")
    outcomes = provider.delete_remote([done, busy, gone, never_sent])
    assert outcomes == {
        done.pk: "deleted",
        busy.pk: "busy",
        gone.pk: "gone",
        never_sent.pk: "gone",
    }
    assert len(requests_to(akool, DELETE_PATH)) == 1
    assert akool.tasks[done.provider_job_id].deleted

    akool.banned = True
    [refused] = provider.delete_remote([busy]).values()
    assert isinstance(refused, ProviderError) and refused.permanent
    assert akool.violations == []


def test_deleting_a_finished_video_deletes_akools_copy_through_the_worker(
    member, akool, image_upload
):
    job = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(job)) and job.state == S.SUCCEEDED
    assert delete_video(member, job)
    delete_provider_copies()  # what the worker runs (inline here, too)
    job.refresh_from_db()
    assert job.provider_deleted_at is not None and job.provider_delete_due_at is None
    assert akool.tasks[job.provider_job_id].deleted
    assert [r.json for r in requests_to(akool, DELETE_PATH)][-1] == {"_ids": job.provider_job_id}
    assert akool.violations == []


def test_what_akool_reports_it_took_is_reconciled_against_our_capture(
    member, akool, image_upload, live_server
):
    """A task AKOOL charged 23 for, at our price of 20: staff see the day's figures and the job."""
    from studio.billing import reconciliation

    akool.plan_next(run_seconds=5, deduction_credit=23)
    akool.plan_next(run_seconds=5)
    charged_more = submit(member, image_upload(), "akool", **I2V)
    as_priced = submit(member, image_upload(), "akool", **I2V)
    assert run_engine_until(lambda: settled(charged_more) and settled(as_priced), timeout=10)
    assert (charged_more.state, as_priced.state) == (S.SUCCEEDED, S.SUCCEEDED)

    today = timezone.localdate(charged_more.finished_at)
    (day,) = reconciliation.daily("akool", start=today, end=today)
    assert (day.jobs_succeeded, day.captured, day.reported) == (2, 40, 43.0)
    assert (day.difference, day.jobs_differing) == (3.0, 1)
    (difference,) = reconciliation.differing_jobs("akool", today)
    assert difference.job_id == str(charged_more.pk)
    assert (difference.captured, difference.reported, difference.difference) == (20, 23.0, 3.0)
