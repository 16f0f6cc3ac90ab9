"""The Content-Security-Policy breaks nothing, in a real Chromium: the main pages run with no
violation — the dashboard, the new-video form (crop preview, an htmx provider switch to Kling,
painting with the motion brush, AKOOL's effects gallery), a job page polling its status, a
finished video playing, the API docs (Swagger UI), the admin and its login."""

import pytest

from studio.models import JobState
from studio.providers import PROVIDERS
from tests.browser import session_cookie
from tests.conftest import make_image_bytes
from tests.factories import make_job

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

S = JobState
# Chromium reports each violation on the console; the event catches any it would not print.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def watched(browser, live_server):
    """watched(user) → a page whose CSP violations (and script errors) fail the test."""
    contexts, problems = [], []

    def open_(user=None):
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        contexts.append(context)
        context.add_init_script(REPORT_VIOLATIONS)
        if user is not None:
            context.add_cookies([session_cookie(live_server, user)])
        page = context.new_page()

        def on_console(message):
            text = message.text
            if "Content Security Policy" in text or text.startswith("CSP violation"):
                problems.append(f"{page.url}: {text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        return page

    yield open_, problems
    for context in contexts:
        context.close()


def settle(page):
    page.wait_for_load_state("networkidle")


def test_the_main_pages_run_with_no_csp_violation(
    watched, live_server, personas, staff, aimlapi, akool, tmp_path
):
    open_page, problems = watched
    base = f"{live_server.url}/t/{personas.team.slug}"
    running = make_job(personas.team, personas.member, state=S.RUNNING)
    finished = make_job(personas.team, personas.member, state=S.SUBMITTING)
    PROVIDERS["local"].render(finished)
    finished.refresh_from_db()
    assert finished.state == S.SUCCEEDED

    page = open_page(personas.member)
    # The policy is really there: a page's inline script is refused (and reported).
    response = page.goto(f"{base}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.inlineRan = true"; document.body.append(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.inlineRan") is None
    assert any("script-src" in problem for problem in problems), problems
    problems.clear()

    # The dashboard, polling its running job.
    with page.expect_response(lambda r: r.url.startswith(f"{base}/?") or r.url == f"{base}/"):
        page.goto(f"{base}/")
    settle(page)

    # The new-video form: the crop preview of a chosen image, then Kling by htmx, the brush.
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_image_bytes("JPEG", (1280, 720)))
    page.goto(f"{base}/jobs/new/")
    page.set_input_files("input[name=image]", str(photo))
    page.wait_for_function("() => document.getElementById('crop-preview-caption').textContent")
    page.select_option("select[name=provider]", "aimlapi")
    page.wait_for_selector("#brush-canvas", state="visible")
    page.wait_for_function("() => document.getElementById('brush-canvas').width > 1")
    box = page.locator("#brush-canvas").bounding_box()
    page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.3 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.3 * box["height"], steps=8)
    page.mouse.up()
    page.select_option("select[name=provider]", "local")
    page.wait_for_selector("select[name=motion]")
    settle(page)

    # AKOOL's effects gallery, swapped in by htmx: its previews come from AKOOL's own servers.
    page.goto(f"{base}/jobs/new/")
    page.select_option("select[name=provider]", "akool")
    page.wait_for_selector("#effects .effect video")
    page.locator(".effect video").first.evaluate("v => { v.preload = 'auto'; v.load(); }")
    page.wait_for_function("() => document.querySelector('.effect video').readyState >= 1")
    settle(page)

    # A job page polling its status, and a finished video that plays.
    with page.expect_response(lambda r: r.url.endswith(f"/jobs/{running.pk}/status/")):
        page.goto(f"{base}/jobs/{running.pk}/")
    page.goto(f"{base}/jobs/{finished.pk}/")
    page.wait_for_function(
        "() => { const v = document.querySelector('video'); return v && v.readyState >= 1 }"
    )

    # The API docs: Swagger UI renders from its own files.
    page.goto(f"{live_server.url}/api/v1/docs")
    page.wait_for_selector(".swagger-ui .info", timeout=20_000)
    page.locator(".opblock-summary").first.click()
    settle(page)

    # The admin, as staff; its login, signed out.
    admin = open_page(staff)
    admin.goto(f"{live_server.url}/admin/")
    admin.wait_for_selector("#site-name")
    admin.goto(f"{live_server.url}/admin/studio/job/")
    settle(admin)
    anonymous = open_page()
    anonymous.goto(f"{live_server.url}/admin/login/")
    anonymous.wait_for_selector("input[name=password]")
    settle(anonymous)

    assert problems == []
