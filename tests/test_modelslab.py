"""ModelsLab (img2video and img2video ultra) through its simulator over real HTTP: the simulator
fetches our signed input URL and posts its webhooks to our app (pytest-django's live server).
The whole life of a job, every documented failure, the plan's in-flight limit, webhooks that only
wake a job, and submissions whose answer was lost and that the provider's callback reconciles."""

import re
import time
from datetime import timedelta

import av
import httpx
import pytest
from django.utils import timezone

from studio.billing.staff import edit_prices
from studio.jobs import steps
from studio.jobs.engine import WAITING_FOR_SLOT
from studio.jobs.states import expire_overdue
from studio.jobs.submit import JobRefused
from studio.models import (
    EntryKind,
    IncidentKind,
    Job,
    JobState,
    LedgerEntry,
    PriceBookVersion,
    ProviderIncident,
    User,
)
from studio.webhooks import callback_url
from tests.providers import (
    MODELSLAB_KEY,
    ledger_kinds,
    make_due,
    run_engine_until,
    settled,
    state_of,
    submit,
)

S = JobState
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
IMG2VIDEO = {"model": "img2video", "prompt": "the sea rolls in", "num_frames": 16, "fps": 8}
ULTRA = {"model": "img2video_ultra", "prompt": "the sea rolls in", "num_frames": 33, "fps": 16}
STAFF_PRICE = 12


@pytest.fixture
def img2video_price(db):
    """Staff set a price for img2video, which ModelsLab does not publish (a new book version)."""
    staff = User.objects.create_user("staff@studio.test", "pw-staff-123", is_staff=True)
    current = PriceBookVersion.objects.latest()
    rule = current.rules.get(provider="modelslab", model="img2video")
    edit_prices(staff, current.pk, {rule.pk: {"per_video": STAFF_PRICE}}, note="img2video price")
    return STAFF_PRICE


def sim_job(sim, job):
    return sim.jobs[int(job.provider_job_id)]


def snapshot(job):
    """What a callback must not change by itself."""
    return Job.objects.filter(pk=job.pk).values(
        "state",
        "provider_job_id",
        "claimed_provider_id",
        "output_ref",
        "error",
        "finished_at",
        "video",
    )[0]


def job_page(client_for, personas, job) -> str:
    page = client_for(personas.member).get(f"/t/{personas.team.slug}/jobs/{job.pk}/")
    assert page.status_code == 200
    return page.content.decode()


def assert_playable_h264(job):
    with job.video.open("rb") as video, av.open(video) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) > 1
    assert job.poster and job.video_width and job.video_duration > 0 and job.video_bytes > 0
    with job.poster.open("rb") as poster:
        assert poster.read(3) == b"\xff\xd8\xff"  # a JPEG


# --- The whole life of a job ----------------------------------------------------------------
@pytest.mark.parametrize("model", ["img2video", "img2video_ultra"])
def test_a_job_runs_with_the_providers_eta_and_ends_as_our_stored_video_charged_once(
    personas, member, modelslab, img2video_price, image_upload, client_for, live_server, model
):
    params = IMG2VIDEO if model == "img2video" else ULTRA
    modelslab.plan_next(run_seconds=150, eta=120)  # 3 s of real time
    job = submit(member, image_upload(size=(1200, 800)), "modelslab", **params)
    assert job.price_quoted == (STAFF_PRICE if model == "img2video" else 31)
    assert ledger_kinds(job) == [EntryKind.RESERVE]

    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    job.refresh_from_db()
    assert job.eta_at is not None and job.eta_at > timezone.now()  # the provider's own hint
    running = job_page(client_for, personas, job)
    assert "(the provider's estimate)" in running

    sent = sim_job(modelslab, job)
    assert sent.endpoint == model and len(modelslab.jobs) == 1
    assert sent.request["webhook"] == callback_url(job)
    assert sent.request["instant_response"] is True
    if model == "img2video":
        assert sent.track_id == job.pk.int % 2**53  # an integer in seed 001
        assert sent.request["init_image"].startswith(f"{live_server.url}/inputs/")
        assert (sent.request["width"], sent.request["height"]) == (512, 336)
    else:
        assert sent.track_id == job.pk.hex  # a string in seed 004
        assert sent.request["base64"] is True and "base64 chars" in sent.request["init_image"]
        assert sent.request["portrait"] is False

    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert_playable_h264(job)
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert job.ledger.get(kind=EntryKind.CAPTURE).amount == job.price_quoted
    assert not job.output_ref and job.output_format == "mp4" and not job.original_output
    assert MODELSLAB_KEY not in str(job.last_response)

    html = job_page(client_for, personas, job)
    assert modelslab.root_url not in html and f":{modelslab.port}/" not in html
    assert f"/t/{personas.team.slug}/jobs/{job.pk}/files/video/" in html  # ours, not theirs
    assert modelslab.wait_for_webhooks(1)
    assert [d.status for d in modelslab.webhooks_sent] == [200]
    assert modelslab.violations == []


def test_a_gif_is_converted_to_h264_mp4_for_the_player_and_the_gif_kept(
    member, modelslab, img2video_price, image_upload
):
    modelslab.plan_next(output_type="gif")
    job = submit(member, image_upload(), "modelslab", **IMG2VIDEO, output_type="gif")
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert sim_job(modelslab, job).output_type == "gif" and job.output_format == "gif"
    assert job.video.name.endswith(".mp4")
    assert_playable_h264(job)
    assert job.original_output.name.endswith(".gif")
    with job.original_output.open("rb") as original:
        assert original.read(6) in (b"GIF87a", b"GIF89a")
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert modelslab.violations == []


def test_a_create_answer_that_is_already_a_success_is_taken_without_a_fetch(
    member, modelslab, image_upload
):
    modelslab.plan_next(instant_success=True)
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert sim_job(modelslab, job).polls == 0
    assert_playable_h264(job)
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert modelslab.violations == []


def test_the_pages_of_a_team_with_an_ultra_job_render(
    personas, member, modelslab, image_upload, client_for
):
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    assert run_engine_until(lambda: settled(job))
    client = client_for(personas.member)
    for path in ("", f"jobs/{job.pk}/", "gallery/", "credits/"):
        page = client.get(f"/t/{personas.team.slug}/{path}")
        assert page.status_code == 200, path
        assert modelslab.root_url not in page.content.decode()


# --- Failures -------------------------------------------------------------------------------
def _respell_message(sim, monkeypatch):
    """Fetch answers whose error is spelt `messege`, as older ModelsLab endpoints spell it."""
    real = sim._state_answer

    def respelt(job, now, *, created=False):
        answer = real(job, now, created=created)
        if answer.get("status") == "error" and "message" in answer:
            answer["messege"] = answer.pop("message")
        return answer

    monkeypatch.setattr(sim, "_state_answer", respelt)


@pytest.mark.parametrize(
    ("when", "spelling", "model", "plan", "said"),
    [
        (
            "create",
            "message",
            "img2video",
            {"instant_success": True, "outcome": "error"},
            "Generation failed: the model produced no video",
        ),
        (
            "create",
            "messege",
            "img2video_ultra",
            {"submit": 400},
            "Bad request: invalid parameters",
        ),
        (
            "fetch",
            "message",
            "img2video",
            {"outcome": "error"},
            "Generation failed: the model produced no video",
        ),
        (
            "fetch",
            "messege",
            "img2video_ultra",
            {"outcome": "error"},
            "Generation failed: the model produced no video",
        ),
    ],
)
def test_an_error_status_fails_the_job_with_a_readable_message_and_a_refund(
    personas,
    member,
    modelslab,
    img2video_price,
    image_upload,
    client_for,
    monkeypatch,
    when,
    spelling,
    model,
    plan,
    said,
):
    if spelling == "messege" and when == "fetch":
        _respell_message(modelslab, monkeypatch)
    modelslab.plan_next(**plan)
    params = IMG2VIDEO if model == "img2video" else ULTRA
    job = submit(member, image_upload(), "modelslab", **params)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED
    assert job.error == f"ModelsLab could not make it: {said}"
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert job.submit_attempts == 1 and len(modelslab.jobs) == (0 if plan.get("submit") else 1)
    if when == "fetch":
        assert job.provider_job_id and sim_job(modelslab, job).polls >= 1
    html = job_page(client_for, personas, job)
    assert said in html and "Refunded" in html
    assert modelslab.violations == []


def test_poll_failures_are_retried_until_the_video_is_delivered(
    member, modelslab, img2video_price, image_upload
):
    modelslab.plan_next(poll_failures=[500, 503, "garbage", 429])
    job = submit(member, image_upload(), "modelslab", **IMG2VIDEO)
    assert run_engine_until(lambda: settled(job), timeout=30)
    assert job.state == S.SUCCEEDED, job.error
    assert sim_job(modelslab, job).polls >= 5  # four failures, then the real answer
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert modelslab.violations == []  # incl. "honour retry_after" after the 429


def test_the_plans_in_flight_limit_holds_jobs_back_until_a_slot_frees(
    member, modelslab, image_upload
):
    modelslab.default_plan.run_seconds = 60
    jobs = [submit(member, image_upload(), "modelslab", **ULTRA) for _ in range(7)]
    assert len(modelslab.jobs) == 5  # the Basic plan's five
    waiting = Job.objects.filter(state=S.QUEUED)
    assert waiting.count() == 2
    assert set(waiting.values_list("status_note", flat=True)) == {WAITING_FOR_SLOT}
    assert run_engine_until(lambda: all(settled(job) for job in jobs), timeout=40)
    assert {job.state for job in jobs} == {S.SUCCEEDED}
    assert len(modelslab.jobs) == 7 and all(job.submit_attempts == 1 for job in jobs)
    assert not any(job.status_note for job in jobs)
    # Never more than five at the provider at once (the simulator also records a violation).
    sent = list(modelslab.jobs.values())
    for job in sent:
        assert sum(1 for other in sent if other.created <= job.created < other.done_at) <= 5
    assert modelslab.violations == []


# --- Webhooks wake a job; only a fetch changes it -------------------------------------------
@pytest.mark.parametrize(("mode", "count"), [("twice", 2), ("late", 1), ("out_of_order", 2)])
def test_duplicated_late_and_out_of_order_callbacks_change_nothing(
    member, modelslab, image_upload, mode, count
):
    modelslab.plan_next(webhook=mode, webhook_delay_seconds=30)
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert modelslab.wait_for_webhooks(count)
    before = snapshot(job)
    run_engine_until(lambda: False, timeout=0.5)  # the engine keeps running meanwhile
    assert snapshot(job) == before
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert [d.status for d in modelslab.webhooks_sent] == [200] * count
    assert modelslab.violations == []


def test_a_success_callback_before_the_video_is_done_does_not_finish_the_job(
    member, modelslab, image_upload
):
    modelslab.plan_next(webhook="before_done", run_seconds=150)  # the callback after 1.5 s
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    assert modelslab.wait_for_webhooks(1)
    assert modelslab.webhooks_sent[0].body["status"] == "success"
    assert modelslab.webhooks_sent[0].status == 200
    run_engine_until(lambda: False, timeout=0.8)  # polls meanwhile say "processing"
    job.refresh_from_db()
    assert job.state == S.RUNNING and not job.output_ref and not job.video
    assert time.monotonic() < sim_job(modelslab, job).done_at  # still before the real end
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED and ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert modelslab.violations == []


def test_forged_callbacks_change_nothing(member, modelslab, image_upload, live_server):
    modelslab.plan_next(run_seconds=3000, webhook="none")  # running for a minute
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    job.refresh_from_db()
    provider_id = int(job.provider_job_id)
    before = snapshot(job)
    success = modelslab.webhook_body(modelslab.jobs[provider_id], "success")

    wrong_token = f"{live_server.url}/hooks/modelslab/{'x' * 43}/"
    assert modelslab.send_webhook(provider_id, success, url=wrong_token).status == 404
    other_provider = callback_url(job).replace("/hooks/modelslab/", "/hooks/stability/")
    assert modelslab.send_webhook(provider_id, success, url=other_provider).status == 404
    not_ours = success | {"track_id": "0" * 32}
    assert modelslab.send_webhook(provider_id, not_ours).status == 400
    for body in ({"json": ["success"]}, {"content": b"<html>\x00\xff{"}, {"json": None}):
        assert httpx.post(callback_url(job), timeout=5, **body).status_code == 400

    assert snapshot(job) == before
    assert ledger_kinds(job) == [EntryKind.RESERVE]
    assert modelslab.violations == []


# --- A create answer that never arrived ------------------------------------------------------
@pytest.mark.parametrize("params", [IMG2VIDEO, ULTRA], ids=["img2video", "ultra"])
def test_a_lost_create_answer_is_reconciled_by_the_providers_callback_and_a_fetch(
    member, modelslab, img2video_price, image_upload, params
):
    modelslab.plan_next(submit="garbage", run_seconds=100)  # the job exists; its answer is lost
    job = submit(member, image_upload(), "modelslab", **params)
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and job.outcome_unknown_at and not job.provider_job_id
    assert "Waiting for ModelsLab to confirm" in job.status_note
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN
    assert len(modelslab.jobs) == 1
    [provider_job] = modelslab.jobs.values()

    assert modelslab.wait_for_webhooks(1)  # its callback names our track_id and its own id
    assert modelslab.webhooks_sent[0].status == 200
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and not job.provider_job_id  # only a fetch may confirm
    assert job.claimed_provider_id == str(provider_job.id)
    assert provider_job.polls == 0

    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert job.provider_job_id == str(provider_job.id) and provider_job.polls >= 1
    assert len(modelslab.jobs) == 1 and job.submit_attempts == 1  # sent once, ever
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert modelslab.violations == []


def test_a_lost_create_answer_nobody_confirms_fails_at_its_deadline_with_a_refund(
    member, modelslab, image_upload
):
    modelslab.plan_next(submit="garbage", webhook="none")
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and job.outcome_unknown_at
    run_engine_until(lambda: False, timeout=0.5)
    assert state_of(job) == S.SUBMITTING  # it waits; it is not sent again
    past = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(deadline_at=past, next_poll_at=past)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "never confirmed" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert len(modelslab.jobs) == 1 and job.submit_attempts == 1
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN
    assert modelslab.violations == []


# --- Outputs, availability, prices ----------------------------------------------------------
def test_an_output_that_vanishes_before_we_copy_it_fails_with_a_refund(
    member, modelslab, image_upload, monkeypatch
):
    modelslab.plan_next(retention_seconds=5)  # gone 0.1 s after it is done
    lost = []
    real_collect = steps.collect_later
    monkeypatch.setattr(steps, "collect_later", lost.append)  # the copy task is lost
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    assert run_engine_until(lambda: Job.objects.get(pk=job.pk).output_ref != "")
    assert lost == [job.pk]
    time.sleep(0.3)  # past the provider's retention
    monkeypatch.setattr(steps, "collect_later", real_collect)
    make_due(job)  # the copy's lease ran out: the engine hands it out again
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and "deleted the video before we could copy it" in job.error
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert not job.video and not job.output_ref
    assert modelslab.violations == []


def test_without_an_api_key_modelslab_is_shown_unavailable_and_refused(
    personas, member, settings, client_for, image_upload
):
    settings.MODELSLAB_API_KEY = ""
    page = client_for(personas.member).get(f"/t/{personas.team.slug}/jobs/new/")
    assert page.status_code == 200
    option = re.search(r'<option value="modelslab"[^>]*>[^<]*</option>', page.content.decode())
    assert option, "no ModelsLab option on the form"
    assert " disabled" in option.group(0)
    assert "No ModelsLab API key is configured" in option.group(0)
    with pytest.raises(JobRefused) as refused:
        submit(member, image_upload(), "modelslab", **ULTRA)
    assert "No ModelsLab API key is configured" in " ".join(refused.value.errors["provider"])
    assert not Job.objects.exists()
    assert not LedgerEntry.objects.exclude(kind=EntryKind.GRANT).exists()


def test_img2video_without_a_staff_price_is_refused_and_nothing_is_reserved(
    personas, member, modelslab, image_upload, client_for
):
    with pytest.raises(JobRefused) as refused:
        submit(member, image_upload(), "modelslab", **IMG2VIDEO)
    message = " ".join(refused.value.errors["provider"])
    assert "no published price" in message and "staff have not set one" in message
    assert not Job.objects.exists() and modelslab.jobs == {}
    assert not LedgerEntry.objects.exclude(kind=EntryKind.GRANT).exists()
    # The form says the same when the member submits it.
    page = client_for(personas.member).post(
        f"/t/{personas.team.slug}/jobs/new/",
        {"provider": "modelslab", **IMG2VIDEO, "image": image_upload()},
    )
    assert page.status_code == 200 and "staff have not set one" in page.content.decode()
    assert not Job.objects.exists()


# --- Races and claims -------------------------------------------------------------------------
def test_a_job_that_expires_while_its_image_is_prepared_stays_expired_and_is_not_sent(
    member, modelslab, image_upload, monkeypatch
):
    """The engine's loop expires overdue jobs while pool threads submit others."""
    from studio.providers import modelslab as adapter

    real_fit = adapter.fit_within

    def fit_while_the_job_expires(source, side):
        fitted = real_fit(source, side)
        past = timezone.now() - timedelta(seconds=1)
        Job.objects.filter(state=S.SUBMITTING).update(deadline_at=past)
        assert expire_overdue() == 1
        return fitted

    monkeypatch.setattr(adapter, "fit_within", fit_while_the_job_expires)
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    run_engine_until(lambda: False, timeout=1)
    job.refresh_from_db()
    assert job.state == S.EXPIRED  # a terminal state never changes again
    assert modelslab.jobs == {}  # and nobody pays the provider for a job we gave up on
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert modelslab.violations == []


def test_a_callback_naming_another_jobs_id_does_not_hand_this_job_that_video(
    member, modelslab, image_upload
):
    modelslab.plan_next(submit="garbage", webhook="none")  # this job's answer is lost
    lost = submit(member, image_upload(), "modelslab", **ULTRA)
    modelslab.plan_next(webhook="none")
    other = submit(member, image_upload(), "modelslab", **ULTRA)
    assert run_engine_until(lambda: settled(other)) and other.state == S.SUCCEEDED
    [ours] = [j for j in modelslab.jobs.values() if str(j.id) != other.provider_job_id]

    # A callback on our URL, with our track_id, that names the other job's id.
    theirs = modelslab.jobs[int(other.provider_job_id)]
    claim = modelslab.webhook_body(theirs, "success") | {"track_id": lost.pk.hex}
    assert modelslab.send_webhook(theirs.id, claim, url=callback_url(lost)).status == 200
    run_engine_until(lambda: False, timeout=1)  # the engine fetches the claimed id ...
    lost.refresh_from_db()
    assert lost.state == S.SUBMITTING and lost.provider_job_id == ""  # ... and it is not ours
    assert not lost.video and lost.claimed_provider_id == ""

    # Our own callback still reconciles it.
    assert modelslab.send_webhook(ours.id).status == 200
    assert run_engine_until(lambda: settled(lost))
    assert lost.state == S.SUCCEEDED and lost.provider_job_id == str(ours.id)
    assert ledger_kinds(lost) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert len(modelslab.jobs) == 2 and modelslab.violations == []


def test_a_callback_that_overtakes_the_lost_answer_still_reconciles_the_job(
    member, modelslab, image_upload, monkeypatch
):
    from studio.providers import http

    modelslab.plan_next(submit="garbage", instant_success=True)  # its callback comes at once
    real_send = http.send

    def send_then_wait(*args, **kwargs):
        response = real_send(*args, **kwargs)
        if kwargs.get("submit"):
            assert modelslab.wait_for_webhooks(1)  # the callback arrives before the answer
        return response

    monkeypatch.setattr(http, "send", send_then_wait)
    job = submit(member, image_upload(), "modelslab", **ULTRA)
    job.refresh_from_db()
    assert job.state == S.SUBMITTING and job.outcome_unknown_at and job.claimed_provider_id
    assert run_engine_until(lambda: settled(job), timeout=5)  # its deadline is 36 s away
    assert job.state == S.SUCCEEDED and len(modelslab.jobs) == 1
