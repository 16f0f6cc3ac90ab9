"""A newcomer walks the product in a real Chromium and meets none of the rough edges issue 9 found:
the form states its limits and previews the chosen picture; a refusal for credits says so once and
keeps the picture; "make another like this" keeps the source image; the invitation link is on the
address actually reached; a running local render can be canceled and refunds; a viewer is offered
nothing they may not do."""

import re
import threading
import time

import pytest
from django.db import connection
from django_q.conf import Conf

from studio.billing import ledger
from studio.engine import render as render_module
from studio.jobs.states import transition
from studio.models import Job, LedgerEntry, Membership, Role, User
from studio.providers import PROVIDERS
from tests.browser import fill_params, session_cookie
from tests.conftest import make_image_bytes

FAST = {"duration": "1", "resolution": "480p", "fps": "12"}


def render_slowly_in_background(job_id, monkeypatch) -> threading.Thread:
    """What a worker does with a local job, frames slowed so the render is still going when the
    member presses Cancel (a full render would take several seconds)."""
    real = render_module._make_frame

    def slow(*args):
        time.sleep(0.03)
        return real(*args)

    monkeypatch.setattr(render_module, "_make_frame", slow)

    def work():
        try:
            job = Job.objects.get(pk=job_id)
            assert transition(job, "queued", "submitting")  # as the engine hands it out
            PROVIDERS["local"].render(Job.objects.get(pk=job_id))
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_newcomer_walks_the_product_without_tripping(
    live_server, browser, tmp_path, settings, monkeypatch
):
    settings.WELCOME_CREDITS = 2  # too few for the first video: the refusal comes first
    photo = tmp_path / "harbour.jpg"
    photo.write_bytes(make_image_bytes("JPEG", (1200, 800)))
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    # Sign up; the personal team is named from the address's name, not the whole address.
    page.goto(live_server.url + "/accounts/signup/")
    page.fill("input[name=email]", "ada.lovelace@example.test")
    page.fill("input[name=password1]", "correct horse battery staple")
    page.fill("input[name=password2]", "correct horse battery staple")
    page.locator("form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/t/[\w-]+/$"))
    assert "ada.lovelace's team" in page.locator("h1").inner_text()
    assert "@" not in page.locator("h1").inner_text()
    team_url = page.url

    # The form says what it takes before anyone gets it wrong, and previews the picture.
    page.get_by_role("link", name="New video").first.click()
    limits = page.locator("#image-limits").inner_text()
    assert "MB" in limits and "JPEG" in limits and "megapixels" in limits.lower()
    page.set_input_files("input[name=image]", str(photo))
    page.wait_for_selector("#crop-preview", state="visible")
    fill_params(page, FAST | {"duration": "5"})
    page.wait_for_function("() => document.querySelector('#price-breakdown') !== null")

    # Too few credits: that one refusal, and the picture is still chosen.
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_selector("#kept-image-note")
    errors = [e for e in page.locator(".field-error, .errorlist li").all_inner_texts() if e.strip()]
    assert len(errors) == 1 and "credit" in errors[0].lower(), errors
    page.wait_for_selector("#crop-preview", state="visible")  # the kept picture, previewed
    assert page.locator("input[name=image]").evaluate("e => e.files.length") == 0

    # Credits arrive; the same form goes through without choosing the picture again.
    user = User.objects.get(email="ada.lovelace@example.test")
    team = user.teams.get()
    ledger.grant(team, 100, actor=None, reason="Pilot budget")
    fill_params(page, FAST)
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    page.wait_for_selector("video#player", timeout=60_000)  # rendered (tasks run inline here)
    player = page.locator("video#player")
    for attribute in ("muted", "loop", "autoplay", "playsinline"):
        assert player.get_attribute(attribute) is not None, attribute
    first = Job.objects.get(team=team)

    # "Make another like this": the source image comes along; submitted, it waits for a worker.
    page.get_by_role("link", name="Make another like this").click()
    page.wait_for_selector("#kept-image-note")
    page.wait_for_selector("#crop-preview", state="visible")
    monkeypatch.setattr(Conf, "SYNC", False)  # queued for a worker: none runs, this test does
    fill_params(page, FAST | {"duration": "10", "resolution": "720p", "fps": "24"})
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]+/$"))
    second = Job.objects.exclude(pk=first.pk).get(team=team)
    assert second.input_width == first.input_width and second.input_image != ""

    # Its render runs; the member cancels it from the page; it stops and the credits return.
    rendering = render_slowly_in_background(second.pk, monkeypatch)
    page.wait_for_function(
        "() => document.querySelector('#job-status').dataset.state === 'running'",
        timeout=20_000,
    )
    page.get_by_role("button", name="Cancel job").click()
    page.wait_for_selector("#refund")
    rendering.join(timeout=10)
    assert not rendering.is_alive(), "the render did not stop after the cancel"
    second.refresh_from_db()
    assert second.state == "canceled" and not second.video
    kinds = sorted(LedgerEntry.objects.filter(job=second).values_list("kind", flat=True))
    assert kinds == ["release", "reserve"]
    refund = page.locator("#refund").inner_text()
    assert refund.count("anceled") == 1 and not refund.endswith(".."), refund

    # An invitation link on the address the owner actually reached (this server's port).
    page.goto(team_url + "settings/")
    page.get_by_role("button", name="Invite").click()
    link = page.locator("#invite-link").input_value()
    assert link.startswith(live_server.url + "/invites/"), link

    # A viewer: no "New video", no Cancel, and a refusal page that says which role is needed.
    viewer = User.objects.create_user("viewer@example.test", "pw-viewer-123")
    Membership.objects.create(team=team, user=viewer, role=Role.VIEWER)
    context = browser.new_context()
    context.add_cookies([session_cookie(live_server, viewer)])
    seen = context.new_page()
    seen.goto(team_url)
    assert seen.get_by_role("link", name="New video").count() == 0
    seen.goto(f"{team_url}jobs/{first.pk}/")
    assert seen.get_by_role("button", name="Cancel job").count() == 0
    answer = seen.goto(f"{team_url}jobs/new/")
    assert answer.status == 403 and "member role" in seen.content()
    context.close()
