"""A newcomer, in a real Chromium: sign up, upload a photo, watch the job page, play the video.

The job runs on a real `qcluster` worker process, and the page learns of it by polling."""

import re

import pytest
from django_q.conf import Conf

from tests.conftest import make_image_bytes
from tests.worker import start_worker, stop_worker


@pytest.fixture
def worker(monkeypatch, transactional_db):
    monkeypatch.setattr(Conf, "SYNC", False)  # enqueue for real; the worker process picks it up
    process = start_worker()
    yield process
    output = stop_worker(process)
    if "Traceback" in output:
        print(output)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_newcomer_signs_up_uploads_and_plays_the_video(live_server, worker, browser, tmp_path):
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(make_image_bytes("JPEG", (1600, 1000)))
    page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone-sized screen
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.url.endswith("/status/") else None)

    page.goto(live_server.url + "/")
    page.get_by_role("link", name="Sign up").first.click()
    page.fill("input[name=email]", "newcomer@example.test")
    page.fill("input[name=password1]", "correct horse battery staple")
    page.fill("input[name=password2]", "correct horse battery staple")
    page.locator("form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/t/[\w-]+/$"))

    page.get_by_role("link", name="New video").first.click()
    page.set_input_files("input[name=image]", str(photo))
    page.select_option("select[name=resolution]", "720p")
    page.fill("input[name=duration]", "3")
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))

    page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return v && v.readyState >= 1 && v.duration > 0 }",
        timeout=60_000,
    )
    duration = page.evaluate("document.querySelector('video').duration")
    assert 2.9 < duration < 3.1
    assert polls, "the job page never polled its status"
    assert page.get_by_role("link", name="Download MP4").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing overflows a phone
    page.screenshot(path=str(tmp_path / "job.png"), full_page=True)
