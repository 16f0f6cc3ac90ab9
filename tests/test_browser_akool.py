"""A member runs an AKOOL job with an effect from the browser, adds their own audio track to the
finished video, then deletes the first video — against the AKOOL simulator, with a real
`qcluster` worker and a real `run_engine` loop."""

import io
import re
import wave

import pytest
from django_q.conf import Conf

from studio.models import Job
from studio.providers import http
from tests.browser import session_cookie
from tests.conftest import make_image_bytes
from tests.providers import AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET
from tests.simulators import AkoolSimulator
from tests.worker import running_workers

TIME_SCALE = 0.02
VIDEO_READY = (
    "() => { const v = document.querySelector('#player');"
    " return v && v.readyState >= 1 && v.duration > 0 }"
)


@pytest.fixture
def akool_app(settings, live_server):
    with AkoolSimulator(AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET, time_scale=TIME_SCALE) as sim:
        env = {
            "AKOOL_CLIENT_ID": AKOOL_CLIENT_ID,
            "AKOOL_CLIENT_SECRET": AKOOL_CLIENT_SECRET,
            "AKOOL_BASE_URL": sim.base_url,
            "AKOOL_TOKEN_URL": sim.token_url,
            "AKOOL_PLAN": "pro",
            "PROVIDER_TIME_SCALE": str(TIME_SCALE),
            "PUBLIC_BASE_URL": live_server.url,
        }
        for name, value in env.items():
            setattr(settings, name, float(value) if name == "PROVIDER_TIME_SCALE" else value)
        http.reset_clients()
        yield sim, env
    http.reset_clients()


@pytest.fixture
def workers(monkeypatch, akool_app, transactional_db):
    monkeypatch.setattr(Conf, "SYNC", False)
    with running_workers(akool_app[1]):
        yield


def wav_bytes(seconds=1.0, rate=8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * int(seconds * rate))
    return buffer.getvalue()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_effect_an_added_audio_track_and_a_deletion_from_the_browser(
    live_server, akool_app, workers, browser, personas, tmp_path
):
    sim, _ = akool_app
    photo, track = tmp_path / "portrait.jpg", tmp_path / "song.wav"
    photo.write_bytes(make_image_bytes("JPEG", (1200, 900)))
    track.write_bytes(wav_bytes())
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_cookies([session_cookie(live_server, personas.member)])
    page = context.new_page()

    # 1. A video with an effect: the gallery shows AKOOL's effects, choosing one hides the prompt.
    page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/new/")
    page.set_input_files("input[name=image]", str(photo))
    page.select_option("select[name=provider]", "akool")
    page.wait_for_selector("#effects .effect video")
    prompt = page.locator("#params [name=prompt]")
    assert prompt.is_visible()
    page.locator(".effect", has_text="Squish It").click()
    assert not prompt.is_visible()
    page.select_option("#params [name=resolution]", "720p")
    page.wait_for_function(
        "() => document.querySelector('#price-amount')?.textContent.startsWith('20 credit')"
    )
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_load_state()
    assert re.search(r"/jobs/[0-9a-f-]{36}/$", page.url), page.locator(
        ".field-error"
    ).all_inner_texts()
    page.wait_for_function(VIDEO_READY, timeout=60_000)
    assert page.get_by_text("Charged 20 credits").is_visible()
    first = Job.objects.get(model="image2video")
    task = sim.tasks[first.provider_job_id]
    assert task.request["effect_code"] == "squish"
    assert "prompt" in task.request and "negative_prompt" in task.request  # AKOOL requires them

    # 2. Their own audio track added to the finished video: a new job, 5 credits.
    page.locator("#add-audio input[value=upload]").check()
    page.set_input_files("#add-audio input[name=audio]", str(track))
    page.get_by_role("button", name="Add audio").click()
    page.wait_for_load_state()
    assert page.url.rstrip("/").split("/")[-1] != str(first.pk), page.content()[:2000]
    page.wait_for_function(VIDEO_READY, timeout=60_000)
    assert page.get_by_text("Charged 5 credits").is_visible()
    with_audio = Job.objects.get(model="add-audio")
    assert with_audio.source_job_id == first.pk
    audio_task = sim.tasks[with_audio.provider_job_id]
    assert audio_task.only_add_audio and audio_task.pre_video_id == first.provider_job_id
    assert audio_task.request["audio_type"] == 2

    # 3. The first video is deleted: gone from the gallery, and from AKOOL once a worker asks.
    page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/{first.pk}/")
    page.locator("#delete summary").click()
    page.get_by_role("button", name="Delete for good").click()
    page.wait_for_url(re.compile(r"/gallery/$"))
    assert str(first.pk) not in page.content()
    for _ in range(100):
        first.refresh_from_db()
        if first.provider_deleted_at:
            break
        page.wait_for_timeout(100)
    assert task.deleted and first.provider_deleted_at is not None
    page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/{first.pk}/")
    assert "and AKOOL's copy too" in page.locator("#deleted").inner_text()
    assert sim.violations == []
