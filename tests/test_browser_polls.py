"""An open job page in a real Chromium: while the job does not change, its polls are answered 304
from the browser's own copy (studio.unchanged_polls), and the countdown and the progress bar
still move every second (static/studio/job_status.js)."""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from studio import unchanged_polls
from studio.models import Job
from tests.browser import session_cookie
from tests.factories import make_job

SVD = "stable-video-diffusion-img2vid-xt-1-1"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_open_job_page_polls_304_while_its_countdown_moves(
    live_server, browser, personas, monkeypatch
):
    answered = []
    real_call = unchanged_polls.UnchangedStatusMiddleware.__call__

    def recording_call(self, request):
        response = real_call(self, request)
        if request.path_info.endswith("/status/"):
            answered.append(response.status_code)
        return response

    monkeypatch.setattr(unchanged_polls.UnchangedStatusMiddleware, "__call__", recording_call)
    now = timezone.now()
    job = make_job(
        personas.team,
        personas.member,
        state="running",
        provider="stability",
        model=SVD,
        running_at=now - timedelta(seconds=60),
        eta_at=now + timedelta(seconds=50),
    )
    context = browser.new_context()
    context.add_cookies([session_cookie(live_server, personas.member)])
    page = context.new_page()
    page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/{job.pk}/")
    countdown = page.locator("time[data-countdown]")
    first_left = int(re.search(r"About (\d+) s left", countdown.inner_text())[1])
    loaded = time.monotonic()
    first_bar = int(page.locator("#job-status progress").get_attribute("value"))

    page.wait_for_function("() => document.querySelector('#job-status') !== null", timeout=5000)
    page.wait_for_timeout(5000)  # two polls at least

    assert 304 in answered, answered  # the browser asked with the tag it kept
    assert set(answered) <= {200, 304}, answered
    left = int(re.search(r"About (\d+) s left", countdown.inner_text())[1])
    print("DEBUG", answered, first_left, left, first_bar)
    # With the clock to the second, though the fragment swapped in last was drawn 2 s before.
    assert abs(left - (first_left - (time.monotonic() - loaded))) <= 1.5, (first_left, left)
    bar = page.evaluate("() => document.querySelector('#job-status progress').value")
    assert bar > first_bar
    assert page.locator("#job-status .percent").inner_text() == f"{bar}%"

    Job.objects.filter(pk=job.pk).update(status_note="Almost there")
    page.wait_for_function(
        "() => document.querySelector('#job-status').textContent.includes('Almost there')",
        timeout=5000,
    )
    context.close()
