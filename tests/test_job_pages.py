"""The job page and the job cards as a person reads them, and canceling a running local render:
readable labels, the player, refund lines, who may cancel and when, a render that stops within
half a second of its cancel and keeps nothing, cards that tell jobs apart without a query each."""

import re
import tempfile
import time
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import studio.engine.render as render_module
import studio.providers.local as local
from studio.jobs import steps
from studio.jobs.states import cancel, expire_overdue, transition
from studio.models import Job, JobState, LedgerEntry, Membership, Role, User
from studio.providers import PROVIDERS
from studio.providers.aimlapi import KLING
from studio.providers.akool_client import STAFF_TOLD
from studio.providers.base import ProviderError
from studio.templatetags.job_pages import refund_sentence
from tests.factories import make_job

S = JobState
KLING_PARAMS = {
    "prompt": "A red fox walks slowly across a snowy meadow at dawn while the camera follows "
    "it and snow falls gently around everything",
    "negative_prompt": "",
    "duration": "10",
    "cfg_scale": 0.5,
}


def page(client, team, job, status=False) -> str:
    suffix = "status/" if status else ""
    headers = {"HX-Request": "true"} if status else {}
    response = client.get(f"/t/{team.slug}/jobs/{job.pk}/{suffix}", headers=headers)
    assert response.status_code in (200, 286)
    return response.content.decode()


def meta(html: str) -> dict[str, str]:
    """The job page's <dt>/<dd> pairs as text."""
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html, re.DOTALL)
    return {unescape(dt): unescape(re.sub(r"<[^>]+>", "", dd)).strip() for dt, dd in pairs}


def kling_job(personas, **fields):
    return make_job(
        personas.team,
        personas.member,
        params=dict(KLING_PARAMS),
        price=5,
        provider="aimlapi",
        model=KLING.key,
        **fields,
    )


def other_member(personas):
    user = User.objects.create_user("other@a.test", "pw-other-123")
    Membership.objects.create(team=personas.team, user=user, role=Role.MEMBER)
    return user


# --- 1. Labels a person reads -----------------------------------------------------------------
def test_the_job_page_names_parameters_by_their_form_labels_with_units(personas, client_for):
    params = {"duration": 5, "resolution": "720p", "aspect": "source", "fps": 24}
    params |= {"motion": "zoom_in", "strength": 5}
    job = make_job(personas.team, personas.member, params=params)
    html = page(client_for(personas.member), personas.team, job)
    shown = meta(html)
    assert shown["Duration"] == "5 s"
    assert shown["Camera motion"] == "Zoom in"
    assert shown["Resolution"] == "720p"
    assert shown["Aspect ratio"] == "From the image"
    assert shown["Frames per second"] == "24"
    assert shown["Provider"] == "Local engine (on this server)"
    assert shown["Model"] == "Camera motion"
    assert "zoom_in" not in html and "camera-motion-v1" not in html


def test_a_remote_jobs_page_shows_its_choices_labels_and_leaves_empty_ones_out(
    personas, client_for
):
    job = kling_job(personas)
    shown = meta(page(client_for(personas.member), personas.team, job))
    assert shown["Length"] == "10 seconds" and shown["Prompt"] == KLING_PARAMS["prompt"]
    assert shown["Faithfulness to the prompt"] == "0.5"
    assert shown["Provider"] == "Kling (AI/ML API)" and shown["Model"] == "Kling v1 standard"
    assert "Negative prompt" not in shown  # left empty by the member


# --- 2. The player ------------------------------------------------------------------------------
def test_the_player_plays_muted_in_a_loop_on_the_page_and_in_the_status_partial(
    personas, client_for
):
    job = make_job(
        personas.team,
        personas.member,
        state=S.SUCCEEDED,
        video="videos/x.mp4",
        poster="posters/x.jpg",
        video_width=640,
        video_height=400,
    )
    client = client_for(personas.member)
    for html in (page(client, personas.team, job), page(client, personas.team, job, True)):
        tag = re.search(r'<video id="player"[^>]*>', html)[0]
        attributes = set(re.findall(r"\s([a-z-]+)(?=[\s>=])", tag))
        assert {"muted", "loop", "autoplay", "playsinline", "controls"} <= attributes


# --- 3. Refund lines ----------------------------------------------------------------------------
def refund_line(client, team, job) -> str:
    html = page(client, team, job)
    return unescape(re.search(r'<p class="refund" id="refund">(.*?)</p>', html, re.DOTALL)[1])


def assert_reads_well(line: str, state_word: str) -> None:
    assert line.startswith("Refunded ") and line.endswith(".") and ".." not in line
    assert not re.search(r"\b(\w+)\b[\s:;,.]+\1\b", line, re.IGNORECASE), line  # "x: x", "x x"
    assert line.lower().count(state_word.lower()) <= 1, line
    assert "credits were returned" not in line.lower(), line


def test_refund_lines_read_well_for_every_reason_the_code_gives(personas, client_for, monkeypatch):
    client = client_for(personas.member)
    team = personas.team

    queued = make_job(team, personas.member)
    assert cancel(queued)
    line = refund_line(client, team, queued)
    assert line == "Refunded 1 credit to the team: Canceled before it started."

    running = make_job(team, personas.member, state=S.RUNNING)
    assert cancel(running)
    line = refund_line(client, team, running)
    assert line == "Refunded 1 credit to the team: Canceled while it was being made."

    broken = make_job(team, personas.member, state=S.SUBMITTING)
    broken.input_image.save("broken.png", __import__("io").BytesIO(b"not an image"), save=True)
    PROVIDERS["local"].render(broken)
    line = refund_line(client, team, broken)
    assert_reads_well(line, "failed")
    assert line.startswith("Refunded 1 credit to the team: Failed: The local engine could not")

    late = make_job(team, personas.member, state=S.RUNNING)
    Job.objects.filter(pk=late.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    assert expire_overdue() == 1
    line = refund_line(client, team, late)
    assert_reads_well(line, "expired")
    assert line == (
        "Refunded 1 credit to the team: The video was not ready in time, so the job expired."
    )

    refused = make_job(team, personas.member, state=S.RUNNING, provider="akool")
    error = ProviderError(
        f"AKOOL refused our client id and secret (x); {STAFF_TOLD}", permanent=True
    )
    steps.apply(PROVIDERS["akool"], refused, error, timezone.now())
    line = refund_line(client, team, refused)
    assert_reads_well(line, "failed")
    assert line == (
        "Refunded 1 credit to the team: Failed: AKOOL refused our client id and secret (x); "
        "staff have been told."
    )

    plain = make_job(team, personas.member, state=S.RUNNING)
    transition(plain, S.RUNNING, S.FAILED, error="The provider refused the image")
    line = refund_line(client, team, plain)
    assert line == "Refunded 1 credit to the team: Failed: The provider refused the image."


def test_the_ledger_keeps_the_same_tidy_reason_the_credits_page_shows(personas):
    queued, late = (
        make_job(personas.team, personas.member),
        make_job(personas.team, personas.member),
    )
    assert cancel(queued)
    Job.objects.filter(pk=late.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    expire_overdue()
    reasons = dict(LedgerEntry.objects.filter(kind="release").values_list("job_id", "reason"))
    assert reasons[queued.pk] == "Canceled before it started"
    assert reasons[late.pk] == "The video was not ready in time, so the job expired"


def test_a_refund_reason_written_before_the_rule_still_reads_well_on_the_page(
    personas, client_for, monkeypatch
):
    old_rule = lambda target, error: f"{JobState(target).label}: {error}"  # noqa: E731
    monkeypatch.setattr("studio.jobs.states.release_reason", old_rule)
    job = make_job(personas.team, personas.member)
    assert cancel(job)
    assert LedgerEntry.objects.get(job=job, kind="release").reason == (
        "Canceled: Canceled before it started."
    )
    line = refund_line(client_for(personas.member), personas.team, job)
    assert line == "Refunded 1 credit to the team: Canceled before it started."


def test_a_refund_reason_written_before_the_rule_still_reads_well():
    assert refund_sentence("Canceled: Canceled before it started.") == "Canceled before it started."
    assert refund_sentence("Failed: Did it work?") == "Failed: Did it work?"
    assert refund_sentence("Failed: x. Your credits were returned.") == "Failed: x."


# --- 4. The cancel button -----------------------------------------------------------------------
def has_cancel_button(client, team, job) -> bool:
    return 'id="cancel-job"' in page(client, team, job)


def test_the_cancel_button_shows_only_to_the_creator_and_admins(personas, client_for):
    other = other_member(personas)
    job = make_job(personas.team, personas.member)
    team = personas.team
    assert has_cancel_button(client_for(personas.member), team, job)
    assert has_cancel_button(client_for(personas.owner), team, job)
    assert not has_cancel_button(client_for(other), team, job)
    assert not has_cancel_button(client_for(personas.viewer), team, job)
    # And the view keeps the same rule.
    client_for(other).post(f"/t/{team.slug}/jobs/{job.pk}/cancel/")
    assert Job.objects.get(pk=job.pk).state == S.QUEUED


def test_the_cancel_button_shows_only_while_cancelling_is_possible(personas, client_for):
    client, team = client_for(personas.member), personas.team
    for state in (S.QUEUED, S.SUBMITTING, S.RUNNING):  # our own engine: at any time
        assert has_cancel_button(client, team, make_job(team, personas.member, state=state))
    for state in (S.SUCCEEDED, S.FAILED, S.CANCELED, S.EXPIRED):
        assert not has_cancel_button(client, team, make_job(team, personas.member, state=state))


def test_a_remote_providers_running_job_cannot_be_canceled_and_the_page_says_why(
    personas, client_for
):
    client, team = client_for(personas.member), personas.team
    queued = kling_job(personas)
    assert has_cancel_button(client, team, queued)  # not sent yet: nothing spent
    running = kling_job(personas, state=S.RUNNING)
    html = page(client, team, running)
    assert 'id="cancel-job"' not in html
    assert "Kling (AI/ML API) is already making this video" in html
    assert "can no longer be canceled" in html
    response = client.post(f"/t/{team.slug}/jobs/{running.pk}/cancel/", follow=True)
    assert "can no longer be canceled" in response.content.decode()
    assert Job.objects.get(pk=running.pk).state == S.RUNNING
    assert not cancel(running)


# --- 4. Canceling a running local render --------------------------------------------------------
LONG_RENDER = {
    "duration": 10,
    "resolution": "480p",
    "aspect": "source",
    "fps": 24,
    "motion": "zoom_in",
    "strength": 5,
}  # 240 frames
FRAME_SECONDS = 0.02  # each frame made at least this slowly: a full render takes 4.8 s or more


@pytest.fixture
def slow_frames(monkeypatch):
    """Frames made slowly enough that a render which did not stop would clearly take long."""
    made = []
    real = render_module._make_frame

    def slow(*args):
        time.sleep(FRAME_SECONDS)
        made.append(time.monotonic())
        return real(*args)

    monkeypatch.setattr(render_module, "_make_frame", slow)
    return made


@pytest.fixture
def temp_root(tmp_path, monkeypatch, settings):
    """Where the renderer's temporary files go (its scratch folder, and anything it would put
    in the system's temporary folder), to see that it leaves none."""
    root = tmp_path / "render-tmp"
    root.mkdir()
    settings.SCRATCH_DIR = root
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def ledger_kinds(job) -> list[str]:
    return sorted(LedgerEntry.objects.filter(job=job).values_list("kind", flat=True))


def stored_files(media_root) -> list:
    return [p for folder in ("videos", "posters") for p in media_root.glob(f"{folder}/**/*.*")]


def test_a_member_cancels_a_running_local_render_and_it_stops_at_once(
    personas, client_for, media_root, temp_root, slow_frames, monkeypatch
):
    job = make_job(personas.team, personas.member, state=S.SUBMITTING, params=LONG_RENDER)
    client = client_for(personas.member)
    real_report, checks, pressed = local._report_progress, [], []
    real_should_stop = local._should_stop

    def press_cancel_once_running(job_, done, total):
        real_report(job_, done, total)
        if not pressed:  # the member presses Cancel on the job page, mid-render
            assert has_cancel_button(client, personas.team, job_)
            client.post(f"/t/{personas.team.slug}/jobs/{job_.pk}/cancel/")
            pressed.append((time.monotonic(), done, total))

    def counted_should_stop(*args):
        checks.append(time.monotonic())
        return real_should_stop(*args)

    monkeypatch.setattr(local, "_report_progress", press_cancel_once_running)
    monkeypatch.setattr(local, "_should_stop", counted_should_stop)
    started = time.monotonic()
    PROVIDERS["local"].render(job)
    ended = time.monotonic()

    job.refresh_from_db()
    assert job.state == S.CANCELED and not job.video and not job.poster
    assert ledger_kinds(job) == ["release", "reserve"]  # released exactly once, never captured
    canceled_at, done, total = pressed[0]
    assert total == 240 and done < total // 4
    assert ended - canceled_at < 1.2  # it stopped within about half a second of the cancel ...
    assert ended - started < total * FRAME_SECONDS / 2  # ... well before a full render
    assert len([t for t in slow_frames if t > canceled_at]) < 60  # frames made after the cancel
    # It asks whether to go on about every half second, not every few frames.
    assert len(checks) <= (ended - started) / 0.5 + 3
    assert stored_files(media_root) == [] and list(temp_root.iterdir()) == []
    assert not cancel(job)  # a second press changes nothing
    assert ledger_kinds(job) == ["release", "reserve"]


def test_a_stopped_render_removes_its_partial_video(tmp_path, slow_frames):
    from PIL import Image

    from studio.engine import RenderSettings, RenderStopped, render_video

    answers = iter([False, False])  # go on at the start and at the first check, then stop
    with pytest.raises(RenderStopped):
        render_video(
            Image.new("RGB", (320, 200), "teal"),
            tmp_path / "out" / "video.mp4",
            RenderSettings.from_mapping(LONG_RENDER),
            poster_path=tmp_path / "out" / "poster.jpg",
            should_stop=lambda: next(answers, True),
        )
    assert list((tmp_path / "out").iterdir()) == []


def test_a_render_that_finishes_just_after_its_cancel_stores_nothing(
    personas, media_root, temp_root, monkeypatch
):
    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    real_render, stored = local.render_video, []

    def render_then_cancel(*args, **kwargs):
        result = real_render(*args, **kwargs)  # the last frame is encoded ...
        assert cancel(Job.objects.get(pk=job.pk))  # ... as the member presses Cancel
        return result

    monkeypatch.setattr(local, "render_video", render_then_cancel)
    monkeypatch.setattr(local, "_store", lambda path, name: stored.append(name) or name)
    PROVIDERS["local"].render(job)
    job.refresh_from_db()
    assert job.state == S.CANCELED and not job.video
    assert stored == []  # not even for a moment
    assert ledger_kinds(job) == ["release", "reserve"]
    assert stored_files(media_root) == [] and list(temp_root.iterdir()) == []


def test_a_render_that_loses_the_final_race_to_a_cancel_keeps_nothing_and_captures_nothing(
    personas, media_root, temp_root, monkeypatch
):
    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    real_store = local._store

    def store_then_cancel(path, name):
        stored = real_store(path, name)
        if name.startswith("posters/"):  # both files are stored: the cancel wins the race now
            assert cancel(Job.objects.get(pk=job.pk))
        return stored

    monkeypatch.setattr(local, "_store", store_then_cancel)
    PROVIDERS["local"].render(job)
    job.refresh_from_db()
    assert job.state == S.CANCELED and not job.video and not job.poster
    assert ledger_kinds(job) == ["release", "reserve"]
    assert stored_files(media_root) == [] and list(temp_root.iterdir()) == []


def test_a_render_canceled_while_waiting_for_its_worker_never_starts(personas, media_root):
    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    assert cancel(job)
    from studio import tasks

    tasks.render_local(str(job.pk))
    job.refresh_from_db()
    assert job.state == S.CANCELED and job.running_at is None and not job.video
    assert ledger_kinds(job) == ["release", "reserve"]


# --- 5. Cards -----------------------------------------------------------------------------------
def finished(personas, **fields):
    return kling_job(
        personas,
        state=S.SUCCEEDED,
        video="videos/k.mp4",
        poster="posters/k.jpg",
        **fields,
    )


@pytest.mark.parametrize("where", ["", "gallery/"])
def test_cards_show_the_prompts_first_words_the_input_and_the_provider(personas, client_for, where):
    job = finished(personas)
    html = client_for(personas.member).get(f"/t/{personas.team.slug}/{where}").content.decode()
    card = re.search(rf'<a class="card" data-job-card href="[^"]*{job.pk}/">(.*?)</a>', html, re.S)[
        1
    ]
    prompt = unescape(re.search(r'<q class="card-prompt">(.*?)</q>', card, re.S)[1])
    assert prompt == "A red fox walks slowly across a snowy meadow at …"
    assert f"/jobs/{job.pk}/files/input/" in card and 'class="card-input"' in card
    assert "Kling (AI/ML API)" in card
    preview = re.search(r'<video class="card-preview"[^>]*>', card)[0]
    assert "muted" in preview and 'preload="none"' in preview and "autoplay" not in preview
    assert f"/jobs/{job.pk}/files/poster/" in preview and "on" + "mouse" not in html


def test_the_gallery_loads_the_hover_script_and_labels_its_filters(personas, client_for):
    html = client_for(personas.member).get(f"/t/{personas.team.slug}/gallery/").content.decode()
    assert '<script src="/static/studio/cards.js" defer></script>' in html
    for field in ("member", "provider", "state"):
        assert re.search(rf'<label for="id_{field}">[^<]+</label>', html)
    assert "<script>" not in html


@pytest.mark.parametrize("where", ["", "gallery/"])
def test_cards_cost_no_query_each(personas, client_for, where):
    client = client_for(personas.member)
    url = f"/t/{personas.team.slug}/{where}"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    finished(personas)
    queries()  # the first request of a session warms caches
    few = queries()
    for _ in range(5):
        finished(personas)
    assert queries() == few


# --- In a real browser: the card plays on hover and focus, the player on its own ---------------
@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_card_plays_while_hovered_or_focused_and_the_player_plays_muted(
    browser, live_server, personas
):
    from tests.browser import session_cookie

    job = make_job(personas.team, personas.member, state=S.SUBMITTING, params=LONG_RENDER)
    PROVIDERS["local"].render(job)
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED
    context = browser.new_context()
    context.add_cookies([session_cookie(live_server, personas.member)])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/t/{personas.team.slug}/gallery/")
    preview = "document.querySelector('a.card[data-job-card] video.card-preview')"
    assert page.evaluate(f"{preview}.paused")
    page.locator("a.card[data-job-card]").first.hover()
    page.wait_for_function(f"() => !{preview}.paused && {preview}.currentTime > 0")
    page.mouse.move(0, 0)
    page.wait_for_function(f"() => {preview}.paused")
    page.locator("a.card[data-job-card]").first.focus()
    page.wait_for_function(f"() => !{preview}.paused")
    page.locator("a.card[data-job-card]").first.blur()
    page.wait_for_function(f"() => {preview}.paused")

    page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/{job.pk}/")
    player = "document.getElementById('player')"
    page.wait_for_function(f"() => !{player}.paused && {player}.currentTime > 0")
    assert page.evaluate(f"[{player}.muted, {player}.loop, {player}.controls]") == [True] * 3
    assert errors == []
    context.close()
