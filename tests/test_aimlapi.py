"""Kling v1 standard through the AI/ML API, against its simulator over real HTTP: the simulator
fetches our signed image, end frame and mask URLs from our app (pytest-django's live server).
The whole life of a job on both API paths, every documented answer and error, answers lost or
unreadable, Kling's input limits, the end frame and the motion brush, pace and deadlines."""

import io
import json
import logging
import uuid
from datetime import timedelta

import av
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image, ImageDraw

from studio.billing.staff import edit_prices
from studio.jobs.states import expire_overdue
from studio.jobs.submit import JobRefused, submit_job
from studio.models import (
    AssetRole,
    EntryKind,
    IncidentKind,
    Job,
    JobState,
    LedgerEntry,
    PriceBookVersion,
    ProviderIncident,
    User,
)
from studio.providers.aimlapi import LABEL, PATHS
from tests.conftest import make_image_bytes
from tests.providers import AIML_KEY, TIME_SCALE, ledger_kinds, run_engine_until, settled, state_of
from tests.simulators.aimlapi import LEGACY_WORDS, MODEL
from tests.simulators.common import json_response

S = JobState
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
FAST = {"run_seconds": 30, "queued_seconds": 10}  # 0.6 s and 0.2 s of real time


def kling(member, image, files=None, **params):
    data = {"model": MODEL, "prompt": "the sea rolls in", "duration": "5"} | params
    return submit_job(member, image, "aimlapi", data, files)


def upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def mask(size, box=None, *, name="mask.png") -> SimpleUploadedFile:
    """A mask as a canvas exports it: a white stroke on a transparent ground."""
    width, height = size
    picture = Image.new("RGBA", size, (0, 0, 0, 0))
    box = box or (width // 4, height // 4, width // 2, height // 2)
    ImageDraw.Draw(picture).rectangle(box, fill=(255, 255, 255, 255))
    return upload(png_of(picture), name)


def png_of(picture) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def generation_of(sim, job):
    return sim.generations[job.provider_job_id]


def creates(sim) -> int:
    return sum(1 for request in sim.requests if request.method == "POST")


def nothing_reserved(sim):
    assert not Job.objects.exists()
    assert not LedgerEntry.objects.exclude(kind=EntryKind.GRANT).exists()
    assert sim.requests == []


def refused(member, image, files=None, **params) -> dict:
    with pytest.raises(JobRefused) as refusal:
        kling(member, image, files, **params)
    return refusal.value.errors


def assert_playable_h264(job):
    with job.video.open("rb") as video, av.open(video) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert sum(1 for _ in container.decode(stream)) > 1
    assert job.poster and job.video_width and job.video_duration > 0 and job.video_bytes > 0


def pace_kept(sim):
    """Every generation was polled at most every 10 documented seconds."""
    return all(gap >= 10 for gaps in sim.poll_gaps().values() for gap in gaps)


# --- The whole life of a job ----------------------------------------------------------------
@pytest.mark.parametrize("path", ["seed", "universal"])
def test_a_job_runs_on_either_path_and_ends_as_our_stored_video_charged_once(
    member, aimlapi, image_upload, settings, live_server, path
):
    settings.AIML_API_PATH = path
    aimlapi.plan_next(**FAST, credits_used=77)
    job = kling(member, image_upload(size=(1200, 800)), negative_prompt="blur", cfg_scale=0.7)
    assert job.price_quoted == 30  # 5 s at the default 6 credits a second
    assert ledger_kinds(job) == [EntryKind.RESERVE]

    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    generation = generation_of(aimlapi, job)
    assert generation.path == PATHS[path] and set(generation.poll_paths) == {PATHS[path]}
    assert generation.body["image_url"].startswith(f"{live_server.url}/inputs/")
    assert {k: v for k, v in generation.body.items() if k != "image_url"} == {
        "model": MODEL,
        "prompt": "the sea rolls in",
        "negative_prompt": "blur",
        "duration": "5",  # a string, as the seed's example sends it
        "cfg_scale": 0.7,
    }
    assert generation.image_format == "JPEG" and generation.image_size == (1200, 800)
    assert generation.polls >= 2 and pace_kept(aimlapi)
    assert creates(aimlapi) == 1

    assert_playable_h264(job)
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert job.ledger.get(kind=EntryKind.CAPTURE).amount == job.price_quoted
    assert job.provider_credits_used == 77  # what the provider says it took, beside our price
    assert job.last_response["status"] == "completed"
    assert AIML_KEY not in json.dumps(job.last_response) and not job.output_ref
    assert aimlapi.violations == []


def test_a_201_answer_naming_a_generation_id_is_taken(member, aimlapi, image_upload):
    aimlapi.plan_next(**FAST, create_status=201, id_field="generation_id")
    job = kling(member, image_upload())
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert generation_of(aimlapi, job).polls >= 1
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert aimlapi.violations == []


def watch_words(job, seen: list):
    """done() for run_engine_until that also notes each status word the job recorded."""

    def done():
        job.refresh_from_db()
        word = (job.last_response or {}).get("status")
        if word and (not seen or seen[-1] != word):
            seen.append(word)
        return job.is_terminal

    return done


def test_the_older_words_waiting_and_active_keep_the_job_running_as_known_words(
    member, aimlapi, image_upload, caplog
):
    caplog.set_level(logging.WARNING, logger="studio.providers.aimlapi")
    aimlapi.plan_next(run_seconds=100, queued_seconds=40, status_words=LEGACY_WORDS)
    job = kling(member, image_upload())
    seen = []
    assert run_engine_until(watch_words(job, seen))
    assert job.state == S.SUCCEEDED, job.error
    assert seen == ["waiting", "active", "completed"]
    assert not [r for r in caplog.records if "unknown status" in r.getMessage()]
    assert aimlapi.violations == []


def test_an_unknown_word_keeps_the_job_running_and_is_logged_once(
    member, aimlapi, image_upload, caplog
):
    word = f"rendering-{uuid.uuid4().hex[:8]}"  # logged once per word per process
    words = ("queued", word, "completed")
    for _ in range(2):
        aimlapi.plan_next(run_seconds=100, queued_seconds=0, status_words=words)
    caplog.set_level(logging.WARNING, logger="studio.providers.aimlapi")
    first, second = kling(member, image_upload()), kling(member, image_upload())
    seen = []
    assert run_engine_until(lambda: watch_words(first, seen)() and settled(second))
    assert seen == [word, "completed"]
    assert (first.state, second.state) == (S.SUCCEEDED, S.SUCCEEDED), first.error
    generations = [generation_of(aimlapi, job) for job in (first, second)]
    answered_with_the_word = [sum(1 for at in g.poll_times if at < g.done_at) for g in generations]
    assert min(answered_with_the_word) >= 1 and sum(answered_with_the_word) >= 3
    logged = [r for r in caplog.records if word in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING
    assert aimlapi.violations == []


@pytest.mark.parametrize("word", ["error", "unknown", "expired", "completed"])
def test_an_error_ends_the_job_whatever_the_word_with_credits_released_once(
    personas, member, aimlapi, image_upload, client_for, word
):
    aimlapi.plan_next(
        **FAST, outcome="error", error_status=word, error_message="Prompt\x00 rejected by policy"
    )
    job = kling(member, image_upload())
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED
    assert job.error == f"{LABEL} could not make it: Prompt rejected by policy"
    assert job.last_response["status"] == word and job.last_response["error"]
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    page = client_for(personas.member).get(f"/t/{personas.team.slug}/jobs/{job.pk}/")
    assert "Prompt rejected by policy" in page.content.decode()
    assert aimlapi.violations == []


# --- Errors on create -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, f"{LABEL} refused the request: Bad Request."),
        (401, "The AI/ML API refused our API key; staff have been told."),
        (403, "Our AI/ML API account is out of credits; staff have been told."),
        (404, f"{LABEL} answered 404: Not Found."),
    ],
)
def test_a_refused_create_fails_the_job_with_a_refund_and_is_not_sent_again(
    member, aimlapi, image_upload, status, message
):
    aimlapi.plan_next(submit=status)
    job = kling(member, image_upload())
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and job.error.startswith(message)
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert job.submit_attempts == 1 and creates(aimlapi) == 1 and aimlapi.generations == {}
    assert aimlapi.violations == []


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_busy_or_broken_create_is_sent_again_later(member, aimlapi, image_upload, status):
    aimlapi.plan_next(submit=status)
    aimlapi.plan_next(**FAST)
    job = kling(member, image_upload())
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    assert job.submit_attempts == 2 and creates(aimlapi) == 2 and len(aimlapi.generations) == 1
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert aimlapi.violations == []


def _create_answers_without_an_id(sim, monkeypatch):
    real = sim._create

    def nameless(request):
        answer = real(request)
        return json_response(answer.status, {"status": "queued", "id": None})

    monkeypatch.setattr(sim, "_create", nameless)


@pytest.mark.parametrize("lost", ["garbage", "drop", "no id"])
def test_a_lost_create_answer_fails_the_job_refunded_and_it_is_never_sent_again(
    member, aimlapi, image_upload, monkeypatch, lost
):
    if lost == "no id":
        _create_answers_without_an_id(aimlapi, monkeypatch)
    else:
        aimlapi.plan_next(submit=lost)
    job = kling(member, image_upload())
    job.refresh_from_db()
    assert job.state == S.FAILED and job.outcome_unknown_at
    assert f"could not confirm that {LABEL} received this job" in job.error
    assert ProviderIncident.objects.get(job=job).kind == IncidentKind.OUTCOME_UNKNOWN
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    run_engine_until(lambda: False, timeout=0.5)
    assert creates(aimlapi) == 1 and len(aimlapi.generations) == 1  # it exists there, once
    assert Job.objects.get(pk=job.pk).submit_attempts == 1
    assert aimlapi.violations == []


# --- Errors and odd answers on poll ---------------------------------------------------------
def test_busy_and_garbled_polls_are_retried_at_the_pace_until_the_video_is_delivered(
    member, aimlapi, image_upload
):
    aimlapi.plan_next(**FAST, poll_failures=[429, 500, 503, "garbage"])
    job = kling(member, image_upload())
    assert run_engine_until(lambda: settled(job), timeout=30)
    assert job.state == S.SUCCEEDED, job.error
    assert generation_of(aimlapi, job).polls >= 5 and pace_kept(aimlapi)
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.CAPTURE]
    assert aimlapi.violations == []


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, f"{LABEL} refused the request: Bad Request."),
        (401, "The AI/ML API refused our API key; staff have been told."),
        (403, "Our AI/ML API account is out of credits; staff have been told."),
        (404, f"{LABEL} no longer knows this generation: Not Found."),
    ],
)
def test_a_refused_poll_fails_the_job_with_a_refund(member, aimlapi, image_upload, status, message):
    aimlapi.plan_next(**FAST)
    job = kling(member, image_upload())
    job.refresh_from_db()
    # Plans offer only 429, 5xx and garbage for polls; the simulator answers these others in
    # the same documented error shape.
    generation_of(aimlapi, job).poll_failures_left.append(status)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.FAILED and job.error.startswith(message)
    assert generation_of(aimlapi, job).polls == 1
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert aimlapi.violations == []


def test_odd_poll_answers_are_retried_and_garbage_figures_ignored(
    member, aimlapi, image_upload, monkeypatch
):
    real_state = aimlapi.state
    odd = [
        ["a", "list"],
        {"status": 5},
        {"status": "completed", "video": None, "error": None, "meta": None},
        {"status": "completed", "video": {"url": "ftp://files.example/v.mp4"}, "error": None},
        {"status": "generating", "meta": {"usage": {"credits_used": True}}, "error": None},
        {"status": "generating", "meta": {"usage": {"credits_used": "12"}}, "error": None},
        {"status": "generating", "meta": {"usage": {"credits_used": 10**400}}, "error": None},
    ]

    def answer(generation, now):
        return odd.pop(0) if odd else real_state(generation, now)

    monkeypatch.setattr(aimlapi, "state", answer)
    aimlapi.plan_next(run_seconds=0, credits_used=5)
    job = kling(member, image_upload())
    seen_costs = set()

    def done():
        seen_costs.add(Job.objects.get(pk=job.pk).provider_credits_used)
        return settled(job)

    assert run_engine_until(done, timeout=30)
    assert job.state == S.SUCCEEDED, job.error
    assert seen_costs <= {None, 5.0} and job.provider_credits_used == 5
    assert generation_of(aimlapi, job).polls == 8
    assert aimlapi.violations == []


# --- Price, availability, deadline ----------------------------------------------------------
def test_the_price_follows_the_duration_and_a_zero_price_refuses_the_job(
    member, aimlapi, image_upload
):
    aimlapi.default_plan.run_seconds = 10
    five, ten = kling(member, image_upload()), kling(member, image_upload(), duration="10")
    assert (five.price_quoted, ten.price_quoted) == (30, 60)
    assert run_engine_until(lambda: settled(five) and settled(ten))
    assert [generation_of(aimlapi, job).duration for job in (five, ten)] == [5, 10]

    staff = User.objects.create_user("staff@studio.test", "pw-staff-123", is_staff=True)
    current = PriceBookVersion.objects.latest()
    rule = current.rules.get(provider="aimlapi", model=MODEL)
    edit_prices(staff, current.pk, {rule.pk: {"per_second": 0}}, note="no price yet")
    errors = refused(member, image_upload())
    assert "has no published price, and staff have not set one yet" in errors["provider"][0]
    assert Job.objects.count() == 2 and creates(aimlapi) == 2
    assert aimlapi.violations == []


def test_without_an_api_key_the_provider_is_unavailable(member, settings, image_upload):
    settings.AIML_API_KEY = ""
    errors = refused(member, image_upload())
    assert errors["provider"] == [
        f"{LABEL} is unavailable: No AI/ML API key is configured (AIML_API_KEY)."
    ]
    assert not Job.objects.exists()


@pytest.mark.parametrize(("duration", "minutes"), [("5", 12), ("10", 20)])
def test_the_deadline_follows_the_duration_and_an_overdue_job_expires_refunded(
    member, aimlapi, image_upload, duration, minutes
):
    aimlapi.plan_next(run_seconds=100_000)
    job = kling(member, image_upload(), duration=duration)
    assert run_engine_until(lambda: state_of(job) == S.RUNNING)
    job.refresh_from_db()
    expected = timedelta(minutes=minutes) * TIME_SCALE
    assert abs((job.deadline_at - job.running_at) - expected) < timedelta(seconds=0.5)

    Job.objects.filter(pk=job.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    assert expire_overdue() == 1
    job.refresh_from_db()
    assert job.state == S.EXPIRED and ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    assert aimlapi.violations == []


# --- The image ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((280, 400), "Kling needs each side at least 300 px; this image is 280×400."),
        (
            (1000, 300),
            "Kling needs an aspect ratio between 1:2.5 and 2.5:1; this image is 1000×300 (3.33:1).",
        ),
        (
            (300, 760),
            "Kling needs an aspect ratio between 1:2.5 and 2.5:1; this image is 300×760 (1:2.53).",
        ),
    ],
)
def test_an_image_outside_klings_limits_is_refused_before_anything_is_reserved(
    member, aimlapi, image_upload, size, message
):
    assert refused(member, image_upload(size=size)) == {"image": [message]}
    nothing_reserved(aimlapi)


def _rotated_jpeg_with_gps() -> bytes:
    """A phone photo stored sideways (EXIF orientation 6) with a GPS position."""
    picture = Image.open(io.BytesIO(make_image_bytes("JPEG", (900, 600))))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0)}
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def _noisy_png(size=(2900, 2100)) -> bytes:
    """A PNG over Kling's 10 MB: a gradient under noise, which does not compress."""
    ground = Image.linear_gradient("L").resize(size).convert("RGB")
    noise = Image.merge("RGB", [Image.effect_noise(size, 40) for _ in range(3)])
    buffer = io.BytesIO()
    Image.blend(ground, noise, 0.5).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "sent_size"),
    [("webp", (4800, 3200)), ("png over 10 MB", (2900, 2100)), ("sideways jpeg", (600, 900))],
)
def test_any_accepted_upload_is_sent_as_an_upright_jpeg_within_klings_limits(
    member, aimlapi, image_upload, kind, sent_size
):
    if kind == "webp":
        image = image_upload(fmt="WEBP", size=(4800, 3200))
        sent_size = (3840, 2560)  # the longest side we send
    elif kind == "sideways jpeg":
        image = upload(_rotated_jpeg_with_gps(), "phone.jpg")
    else:
        data = _noisy_png()
        assert len(data) > 10 * 1024 * 1024
        image = upload(data, "big.png")
    aimlapi.plan_next(**FAST)
    job = kling(member, image)
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    generation = generation_of(aimlapi, job)
    assert generation.image_format == "JPEG" and generation.image_size == sent_size
    assert aimlapi.violations == []  # incl. "carries personal metadata"


# --- The end frame --------------------------------------------------------------------------
def test_an_end_frame_reaches_kling_as_an_upright_jpeg(member, aimlapi, live_server, image_upload):
    aimlapi.plan_next(**FAST)
    tail = image_upload(fmt="WEBP", size=(900, 600), name="last.webp")
    job = kling(member, image_upload(size=(1200, 800)), {"tail_image": tail})
    [asset] = job.assets.all()
    assert asset.role == AssetRole.TAIL_IMAGE and asset.content_type == "image/jpeg"
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    generation = generation_of(aimlapi, job)
    assert generation.body["tail_image_url"].startswith(f"{live_server.url}/inputs/files/")
    assert generation.tail_image_size == (900, 600)
    assert "static_mask_url" not in generation.body and "dynamic_masks" not in generation.body
    assert aimlapi.violations == []


@pytest.mark.parametrize(
    ("tail", "message"),
    [
        (
            ((200, 400), None),
            "Kling needs each side at least 300 px; the end frame is 200×400.",
        ),
        (
            ((1300, 500), None),
            "Kling needs an aspect ratio between 1:2.5 and 2.5:1; the end frame is 1300×500 "
            "(2.60:1).",
        ),
        ((None, b"\x00" * 5000), "The end frame: This file is not an image we can read"),
        ((None, b"GIF89a" + b"\x00" * 100), "The end frame: "),
        ((None, "a text field"), "The end frame must be an uploaded file."),
    ],
    ids=["small", "wide", "nul bytes", "broken gif", "not a file"],
)
def test_an_end_frame_kling_would_refuse_is_refused_before_anything_is_reserved(
    member, aimlapi, image_upload, tail, message
):
    size, content = tail
    if size is not None:
        tail = image_upload(size=size, name="tail.png")
    elif isinstance(content, bytes):
        tail = upload(content, "tail.png")
    else:
        tail = content
    errors = refused(member, image_upload(), {"tail_image": tail})
    assert list(errors) == ["tail_image"] and errors["tail_image"][0].startswith(message)
    nothing_reserved(aimlapi)


def test_an_end_frame_with_the_motion_brush_is_refused(member, aimlapi, image_upload):
    files = {"tail_image": image_upload(name="tail.png"), "static_mask": mask((640, 400))}
    errors = refused(member, image_upload(), files)
    assert errors == {
        "tail_image": [
            "Kling cannot combine an end frame with the motion brush: send one or the other."
        ]
    }
    files = {"tail_image": image_upload(name="tail.png")}
    errors = refused(member, image_upload(), files, trajectory_1="[[1, 1], [2, 2]]")
    assert list(errors) == ["tail_image"]
    nothing_reserved(aimlapi)


# --- The motion brush -----------------------------------------------------------------------
def test_the_motion_brush_reaches_kling_at_the_size_of_the_image_sent(
    member, aimlapi, live_server, image_upload
):
    """A 4800×3200 WebP is sent as a 3840×2560 JPEG: the masks (drawn at the image's size or
    at a quarter of it) are sent at 3840×2560, and the trajectories scaled by 0.8."""
    aimlapi.plan_next(**FAST)
    files = {
        "static_mask": mask((1200, 800), (0, 0, 300, 800)),
        "dynamic_mask_1": mask((4800, 3200), (2000, 1000, 3000, 2000)),
        "dynamic_mask_2": mask((1200, 800), name="second.png"),
    }
    job = kling(
        member,
        image_upload(fmt="WEBP", size=(4800, 3200)),
        files,
        duration="10",
        trajectory_1="[[0, 0], [2400, 1600], [4799, 3199]]",
        trajectory_2=[[100, 200], [1001, 3]],  # an API caller may send the list itself
    )
    assert job.price_quoted == 60
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error

    generation = generation_of(aimlapi, job)
    assert generation.image_size == (3840, 2560) and generation.image_format == "JPEG"
    assert generation.static_mask_size == (3840, 2560)
    assert [m.size for m in generation.dynamic_masks] == [(3840, 2560)] * 2
    assert [m.trajectories for m in generation.dynamic_masks] == [
        [(0, 0), (1920, 1280), (3839, 2559)],
        [(80, 160), (801, 2)],
    ]
    body = generation.body
    assert body["static_mask_url"].startswith(f"{live_server.url}/inputs/files/")
    assert all(
        m["mask_url"].startswith(f"{live_server.url}/inputs/") for m in body["dynamic_masks"]
    )
    assert body["duration"] == "10" and "tail_image_url" not in body

    # What was sent is what we keep: binary PNGs at the sent size, in the slots posted.
    assets = list(job.assets.order_by("role", "position"))
    assert [(a.role, a.position) for a in assets] == [
        (AssetRole.DYNAMIC_MASK, 1),
        (AssetRole.DYNAMIC_MASK, 2),
        (AssetRole.STATIC_MASK, 0),
    ]
    assert assets[0].trajectory == [[0, 0], [2400, 1600], [4799, 3199]]  # as drawn
    for asset in assets:
        with asset.file.open("rb") as stored, Image.open(stored) as picture:
            assert picture.format == "PNG" and picture.size == (3840, 2560)
            assert {value for _, value in picture.getcolors()} == {0, 255}
    assert aimlapi.violations == []


def test_a_job_that_expires_while_its_masks_are_scaled_stays_expired_and_is_not_sent(
    member, aimlapi, image_upload, monkeypatch
):
    """The engine's loop expires overdue jobs while pool threads prepare others."""
    from studio.providers import kling_inputs

    real_size = kling_inputs.prepared_size

    def size_while_the_job_expires(job):
        past = timezone.now() - timedelta(seconds=1)
        Job.objects.filter(state=S.SUBMITTING).update(deadline_at=past)
        assert expire_overdue() == 1
        return real_size(job)

    monkeypatch.setattr(kling_inputs, "prepared_size", size_while_the_job_expires)
    files = {"static_mask": mask((320, 200))}
    job = kling(member, image_upload(size=(640, 400)), files)
    job.refresh_from_db()
    assert job.state == S.EXPIRED and aimlapi.requests == []
    assert ledger_kinds(job) == [EntryKind.RESERVE, EntryKind.RELEASE]
    [asset] = job.assets.all()  # still the mask as posted, and its file is there
    with asset.file.open("rb") as stored, Image.open(stored) as picture:
        assert picture.size == (320, 200)
    assert aimlapi.violations == []


def test_the_motion_brush_posted_through_the_form_reaches_kling(
    personas, aimlapi, client_for, image_upload
):
    client = client_for(personas.member)
    form = client.get(f"/t/{personas.team.slug}/jobs/new/params/?provider=aimlapi").content
    for name in ("prompt", "duration", "cfg_scale", "tail_image"):
        assert f'name="{name}"'.encode() in form, name

    aimlapi.plan_next(**FAST)
    page = client.post(
        f"/t/{personas.team.slug}/jobs/new/",
        {
            "provider": "aimlapi",
            "model": MODEL,
            "prompt": "the boat drifts",
            "negative_prompt": "",
            "duration": "5",
            "cfg_scale": "0.5",
            "image": image_upload(size=(640, 400)),
            "static_mask": mask((640, 400), (0, 0, 100, 400)),
            "dynamic_mask_3": mask((640, 400), name="boat.png"),
            "trajectory_3": "[[200, 150], [260, 150], [320, 160]]",
            "trajectory_1": "",  # the canvas's untouched slots
        },
    )
    assert page.status_code == 302, page.content.decode()[:2000]
    job = Job.objects.get()
    assert run_engine_until(lambda: settled(job))
    assert job.state == S.SUCCEEDED, job.error
    generation = generation_of(aimlapi, job)
    assert generation.static_mask_size == (640, 400)
    assert [m.trajectories for m in generation.dynamic_masks] == [
        [(200, 150), (260, 150), (320, 160)]
    ]
    assert aimlapi.violations == []


def _jpeg(size=(640, 400)):
    return upload(make_image_bytes("JPEG", size), "mask.png")


FINE_PATH = "[[10, 10], [300, 200]]"


@pytest.mark.parametrize(
    ("files", "data", "field", "message"),
    [
        ({}, {"trajectory_1": "[[1, 2"}, "trajectory_1", "Trajectory 1 has no dynamic_mask_1"),
        ({"dynamic_mask_1": "mask"}, {}, "dynamic_mask_1", "Dynamic mask 1 has no trajectory_1"),
        (
            {"dynamic_mask_1": "mask"},
            {"trajectory_1": "[[1, 2"},
            "trajectory_1",
            "Trajectory 1 must be a JSON list of [x, y] points.",
        ),
        (
            {"dynamic_mask_1": "mask"},
            {"trajectory_1": "\x00" * 20},
            "trajectory_1",
            "Trajectory 1 must be a JSON list of [x, y] points.",
        ),
        (
            {"dynamic_mask_1": "mask"},
            {"trajectory_1": "[" * 3000},
            "trajectory_1",
            "Trajectory 1 must be a JSON list of [x, y] points.",
        ),
        (
            {"dynamic_mask_1": "mask"},
            {"trajectory_1": {"x": 1, "y": 2}},
            "trajectory_1",
            "Trajectory 1 must be a JSON list of [x, y] points.",
        ),
        (
            {"dynamic_mask_2": "mask"},
            {"trajectory_2": "[[1, 2]]"},
            "trajectory_2",
            "Trajectory 2 needs 2 to 100 points; it has 1.",
        ),
        (
            {"dynamic_mask_2": "mask"},
            {"trajectory_2": json.dumps([[1, 1]] * 101)},
            "trajectory_2",
            "Trajectory 2 needs 2 to 100 points; it has 101.",
        ),
        (
            {"dynamic_mask_2": "mask"},
            {"trajectory_2": "[[1, " + "9" * 5000 + "], [2, 2]]"},
            "trajectory_2",
            "Trajectory 2 is too long: at most 100 points.",
        ),
        (
            {"dynamic_mask_2": "mask"},
            {"trajectory_2": "[[1, 2], [" + "9" * 300 + ", 2]]"},
            "trajectory_2",
            "Trajectory 2: point 2 lies outside the 640×400 image (x from 0 to 639, y from 0 "
            "to 399).",
        ),
        (
            {"dynamic_mask_2": "mask"},
            {"trajectory_2": "[[10, 10], [640, 10]]"},
            "trajectory_2",
            "Trajectory 2: point 2 lies outside the 640×400 image",
        ),
        (
            {"dynamic_mask_2": "mask"},
            {"trajectory_2": "[[10, -1], [20, 10]]"},
            "trajectory_2",
            "Trajectory 2: point 1 lies outside",
        ),
        (
            {"dynamic_mask_3": "mask"},
            {"trajectory_3": "[[10.5, 10], [20, 10]]"},
            "trajectory_3",
            "Trajectory 3: point 1 must be [x, y] in whole pixels.",
        ),
        (
            {"dynamic_mask_3": "mask"},
            {"trajectory_3": "[[10, 10], [true, false]]"},
            "trajectory_3",
            "Trajectory 3: point 2 must be [x, y] in whole pixels.",
        ),
        (
            {"dynamic_mask_3": "mask"},
            {"trajectory_3": "[[10, 10], [1e400, 2]]"},
            "trajectory_3",
            "Trajectory 3: point 2 must be [x, y] in whole pixels.",
        ),
        (
            {"dynamic_mask_3": "mask"},
            {"trajectory_3": "[[10, 10], [1, 2, 3]]"},
            "trajectory_3",
            "Trajectory 3: point 2 must be [x, y] in whole pixels.",
        ),
        (
            {"dynamic_mask_1": "jpeg"},
            {"trajectory_1": FINE_PATH},
            "dynamic_mask_1",
            "Dynamic mask 1 must be a PNG; this file is a JPEG.",
        ),
        (
            {"static_mask": "jpeg"},
            {},
            "static_mask",
            "The static mask must be a PNG; this file is a JPEG.",
        ),
        (
            {"static_mask": "square"},
            {},
            "static_mask",
            "The static mask is 400×400, not the shape of the 640×400 image: a mask must have "
            "the image's aspect ratio (within 1%).",
        ),
        (
            {"static_mask": "empty"},
            {},
            "static_mask",
            "The static mask is empty: paint the area it marks, or leave it out.",
        ),
        (
            {"dynamic_mask_1": "nul"},
            {"trajectory_1": FINE_PATH},
            "dynamic_mask_1",
            "Dynamic mask 1: This file is not an image we can read",
        ),
        (
            {"dynamic_mask_1": "text"},
            {"trajectory_1": FINE_PATH},
            "dynamic_mask_1",
            "Dynamic mask 1 must be an uploaded file.",
        ),
        (
            {"dynamic_mask_7": "mask"},
            {"trajectory_7": FINE_PATH},
            "dynamic_masks",
            "Kling takes at most 6 dynamic masks (dynamic_mask_1 … dynamic_mask_6 with "
            "trajectory_1 … trajectory_6); dynamic_mask_7 is not one of them.",
        ),
        (
            {},
            {"trajectory_01": FINE_PATH},
            "dynamic_masks",
            "Kling takes at most 6 dynamic masks",
        ),
    ],
)
def test_a_motion_brush_kling_would_refuse_is_refused_with_the_field_named(
    member, aimlapi, image_upload, files, data, field, message
):
    makers = {
        "mask": lambda: mask((640, 400)),
        "jpeg": _jpeg,
        "square": lambda: mask((400, 400)),
        "empty": lambda: upload(png_of(Image.new("RGBA", (640, 400), (255, 255, 255, 0))), "m.png"),
        "nul": lambda: upload(b"\x00" * 5000, "mask.png"),
        "text": lambda: "[[1, 2], [3, 4]]",
    }
    files = {name: makers[kind]() for name, kind in files.items()}
    errors = refused(member, image_upload(size=(640, 400)), files, **data)
    assert list(errors) == [field]
    assert errors[field][0].startswith(message), errors[field][0]
    nothing_reserved(aimlapi)


def test_every_wrong_motion_brush_field_is_named_at_once(member, aimlapi, image_upload):
    files = {
        "static_mask": _jpeg(),
        "dynamic_mask_1": mask((640, 400)),
        "dynamic_mask_2": mask((640, 400)),
    }
    data = {"trajectory_1": "[[1, 1]]", "trajectory_2": FINE_PATH, "trajectory_4": FINE_PATH}
    errors = refused(member, image_upload(size=(640, 400)), files, **data)
    assert sorted(errors) == ["static_mask", "trajectory_1", "trajectory_4"]
    nothing_reserved(aimlapi)


def _fuzzed_file(rng):
    png = png_of(Image.new("RGBA", (640, 400), (255, 255, 255, 255)))
    modes = ("1", "L", "LA", "P", "I;16", "RGB")
    choices = [
        lambda: rng.randbytes(rng.randrange(0, 300)),
        lambda: b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randrange(0, 300)),
        lambda: png[: rng.randrange(8, len(png))],  # cut short
        lambda: png_of(Image.new(rng.choice(modes), (640, 400), 1)),
        lambda: png,
    ]
    data = rng.choice(choices)()
    return upload(data, "fuzz.png") if rng.random() < 0.9 else data.decode("latin-1")


def _fuzzed_path(rng):
    atoms = [0, 1, -1, 639, 640, 10**30, 2.5, float("nan"), True, None, "7", [], {}, "\x00"]

    def value(depth=0):
        if depth > 3 or rng.random() < 0.5:
            return rng.choice(atoms)
        return [value(depth + 1) for _ in range(rng.randrange(0, 4))]

    path = [value() for _ in range(rng.randrange(0, 6))]
    kind = rng.randrange(4)
    if kind == 0:
        return path
    text = json.dumps(path, allow_nan=True)
    if kind == 1:
        return text
    if kind == 2:
        return text[: rng.randrange(0, len(text) + 1)] + rng.choice(["", "\x00", "]", "{"])
    return "".join(chr(rng.randrange(0, 0x3000)) for _ in range(rng.randrange(0, 60)))


def test_no_motion_brush_input_raises_anything_but_a_refusal():
    """Seeded random posts: each either passes or is refused field by field, never an error."""
    from random import Random

    from studio.providers import PROVIDERS
    from studio.providers.base import AssetsRefused
    from studio.uploads import CheckedImage

    rng = Random(7)
    image = CheckedImage("PNG", 640, 400)
    outcomes = set()
    for _ in range(300):
        files, data = {}, {}
        for name in ("tail_image", "static_mask", *(f"dynamic_mask_{n}" for n in (1, 2, 7))):
            if rng.random() < 0.3:
                files[name] = _fuzzed_file(rng)
        for n in (1, 2, 7):
            if rng.random() < 0.5:
                data[f"trajectory_{n}"] = _fuzzed_path(rng)
        try:
            PROVIDERS["aimlapi"].take_assets(MODEL, {}, files, data, image)
            outcomes.add("taken")
        except AssetsRefused as refusal:
            assert refusal.errors and all(refusal.errors.values())
            outcomes.add("refused")
    assert outcomes == {"taken", "refused"}
