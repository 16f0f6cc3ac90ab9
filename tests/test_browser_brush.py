"""Kling's motion brush on the new-job form (static/studio/brush.js), in a real Chromium against
the live app and the AI/ML API simulator: a member paints a still area and a moving area, draws
its path, and Kling receives PNG masks of the image's size and the path in its pixels. An end
frame together with paint is stopped in the browser; a finger paints on a phone."""

import io
import math
import re

import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from studio.models import AssetRole, Job, JobState
from tests.browser import session_cookie
from tests.conftest import make_image_bytes
from tests.providers import run_engine_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WIDTH, HEIGHT = 1280, 720
CONFLICT = "Kling cannot combine an end frame with the motion brush"
# Strokes as fractions of the picture: (x, y) from → to.
STILL_STROKE = ((0.10, 0.25), (0.35, 0.25))
MOVING_STROKE = ((0.55, 0.70), (0.75, 0.70))
PATH = ((0.65, 0.70), (0.80, 0.55), (0.90, 0.35))
# A wiggly path of hundreds of pointer moves: more turns than 100 points can follow exactly.
WAVE = tuple(
    (0.60 + 0.30 * t, 0.70 - 0.35 * t + 0.04 * math.sin(16 * math.pi * t))
    for t in (i / 120 for i in range(121))
)
ALL_DRAWN = "Still area painted; moving area 1 painted, path drawn."


@pytest.fixture
def fetched(aimlapi, monkeypatch):
    """The bytes of every file the simulator fetched, by URL (it keeps only their sizes)."""
    files: dict[str, bytes] = {}
    client = aimlapi.outbound()

    class Recording:
        def get(self, url, **kwargs):
            answer = client.get(url, **kwargs)
            files[str(url)] = answer.content
            return answer

    monkeypatch.setattr(aimlapi, "outbound", Recording)
    return files


@pytest.fixture
def photos(tmp_path):
    def make(name, size=(WIDTH, HEIGHT), fmt="JPEG"):
        path = tmp_path / name
        path.write_bytes(make_image_bytes(fmt, size))
        return str(path)

    return make


@pytest.fixture
def open_form(browser, live_server, personas, aimlapi):
    """open_form(image, **context options) → a page on the new-job form, Kling chosen, the
    image on the brush's canvas. Script errors on the page fail the test."""
    contexts, errors = [], []

    def open_(image, **options):
        context = browser.new_context(**({"viewport": {"width": 1200, "height": 900}} | options))
        contexts.append(context)
        context.add_cookies([session_cookie(live_server, personas.member)])
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.posts = []  # the form's posts: a stopped submit sends none
        page.on("request", lambda r: r.method == "POST" and page.posts.append(r))
        page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/new/")
        page.set_input_files("input[name=image]", image)
        choose_kling(page)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, errors


def choose_kling(page):
    page.select_option("select[name=provider]", "aimlapi")
    page.wait_for_selector("#brush-canvas", state="visible")
    page.wait_for_function("() => document.getElementById('brush-canvas').width > 1")


def at(page, fx, fy) -> tuple[float, float]:
    """Page coordinates of a point of the picture given as fractions."""
    box = page.locator("#brush-canvas").bounding_box()
    return box["x"] + fx * box["width"], box["y"] + fy * box["height"]


def drag(page, points, steps=12):
    page.locator("#brush-canvas").scroll_into_view_if_needed()
    page.mouse.move(*at(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(page, *point), steps=steps)
    page.mouse.up()


def tool(page, name):
    page.get_by_role("radio", name=name, exact=True).check()


def submit(page):
    page.get_by_role("button", name="Make the video").click()


def stayed(page):
    """The browser stopped the submit: nothing was posted (the server never had to refuse)."""
    page.wait_for_load_state("networkidle")
    assert page.posts == []
    assert not Job.objects.exists()


def mask_at(mask: Image.Image, fx, fy) -> int:
    x = min(mask.width - 1, int(fx * mask.width))
    y = min(mask.height - 1, int(fy * mask.height))
    return mask.getpixel((x, y))


def assert_painted(mask: Image.Image, stroke, *, elsewhere):
    """White along the stroke (its ends and middle), black at `elsewhere`."""
    (x0, y0), (x1, y1) = stroke
    for f in (0.0, 0.5, 1.0):
        assert mask_at(mask, x0 + f * (x1 - x0), y0 + f * (y1 - y0)) == 255, (stroke, f)
    for point in elsewhere:
        assert mask_at(mask, *point) == 0, point


def job_from(page) -> Job:
    """The job the form created: the script prepares the files, then the form posts."""
    try:
        page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"), timeout=10_000)
    except PlaywrightTimeout:
        refusals = page.locator(".field-error:not(:empty), .errorlist").all_inner_texts()
        pytest.fail(f"no job was made: {refusals}")
    return Job.objects.get(pk=page.url.rstrip("/").rsplit("/", 1)[1])


def test_a_member_paints_what_stays_still_and_what_moves_and_kling_receives_the_masks_and_path(
    open_form, photos, aimlapi, fetched, tmp_path
):
    page = open_form(photos("harbour.jpg"))
    explained = page.inner_text("#params")
    assert "Paint what stays still, paint what moves and draw the path it takes" in explained
    assert "{" not in explained  # no template syntax leaks onto the page
    drag(page, STILL_STROKE)  # the still area is the tool at first
    tool(page, "Moving area 1")
    drag(page, MOVING_STROKE)
    tool(page, "Path 1")
    drag(page, WAVE, steps=3)
    expect(page.locator("#brush-status")).to_have_text(ALL_DRAWN)
    page.screenshot(path=str(tmp_path / "brush.png"), full_page=True)

    # htmx swaps the settings away and back: the paint belongs to the image and stays.
    page.select_option("select[name=provider]", "local")
    page.wait_for_selector("#brush-canvas", state="detached")
    choose_kling(page)
    page.wait_for_function(
        "() => document.getElementById('brush-status').textContent.startsWith('Still area painted')"
    )

    submit(page)
    job = job_from(page)
    assert run_engine_until(lambda: _state(job) == JobState.SUCCEEDED, timeout=60), _state(job)

    (generation,) = aimlapi.generations.values()
    assert aimlapi.violations == []
    assert "tail_image_url" not in generation.body
    sent = generation.image_size
    assert sent == (WIDTH, HEIGHT)
    assert generation.static_mask_size == sent
    (moving,) = generation.dynamic_masks
    assert moving.size == sent

    still = _png(fetched[generation.body["static_mask_url"]])
    brushed = _png(fetched[moving.mask_url])
    assert still.size == brushed.size == sent
    assert _shades(still) == _shades(brushed) == [0, 255]  # black and white only
    assert_painted(still, STILL_STROKE, elsewhere=[(0.2, 0.45), MOVING_STROKE[0], (0.9, 0.9)])
    assert_painted(brushed, MOVING_STROKE, elsewhere=[(0.65, 0.9), STILL_STROKE[0], (0.2, 0.9)])

    points = moving.trajectories
    assert 16 <= len(points) <= 100, points  # simplified, yet still following its eight waves
    (start_x, start_y), (end_x, end_y) = WAVE[0], WAVE[-1]
    assert _near(points[0], (start_x * sent[0], start_y * sent[1]))
    assert _near(points[-1], (end_x * sent[0], end_y * sent[1]))


def test_an_end_frame_with_paint_is_stopped_in_the_browser_with_klings_words(
    open_form, photos, aimlapi
):
    page = open_form(photos("street.jpg"))
    drag(page, STILL_STROKE)
    page.set_input_files("input[name=tail_image]", photos("street-end.jpg"))
    error = page.locator("#tail-image-error")
    expect(error).to_contain_text(CONFLICT)  # said as soon as both are chosen
    submit(page)
    expect(page.locator("input[name=tail_image]")).to_be_focused()  # stopped, pointing at it
    expect(error).to_contain_text(CONFLICT)
    stayed(page)

    # A moving area without its path is stopped beside it too.
    page.get_by_role("button", name="Clear the still area").click()
    expect(error).to_have_text("")
    page.set_input_files("input[name=tail_image]", [])
    tool(page, "Moving area 1")
    drag(page, MOVING_STROKE)
    submit(page)
    expect(page.locator("#brush-area-1-error")).to_contain_text("Draw the path moving area 1 takes")
    stayed(page)
    # And a path without its area.
    page.get_by_role("button", name="Clear moving area 1").click()
    tool(page, "Path 1")
    drag(page, PATH)
    submit(page)
    expect(page.locator("#brush-area-1-error")).to_contain_text(
        "Paint the area that follows path 1"
    )
    stayed(page)

    # Choosing another image clears the brush (the masks belong to the image): the end frame
    # goes alone.
    page.set_input_files("input[name=image]", photos("street-2.jpg", (1200, 800)))
    page.wait_for_function(
        "() => document.getElementById('brush-status').textContent.includes('starts again')"
    )
    page.set_input_files("input[name=tail_image]", photos("street-end.jpg"))
    expect(error).to_have_text("")
    submit(page)
    job = job_from(page)
    assert [asset.role for asset in job.assets.all()] == [AssetRole.TAIL_IMAGE]


def test_a_finger_paints_the_brush_on_a_phones_photo(open_form, photos, tmp_path, monkeypatch):
    # A 12 MP phone photo: painted at a reduced scale, posted at its own size. No engine runs,
    # so the job keeps its masks as posted (sending it would scale them to Kling's 3840 px).
    monkeypatch.setattr("studio.tasks.nudge", lambda: None)
    size = width, height = 4032, 3024
    page = open_form(
        photos("dog.jpg", size), viewport={"width": 390, "height": 844}, has_touch=True
    )
    page.locator("#brush-canvas").scroll_into_view_if_needed()
    box = page.locator("#brush-canvas").bounding_box()
    assert box["width"] <= 390 - 16  # the canvas fits the phone's width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    scrolled = page.evaluate("window.scrollY")
    touch = page.context.new_cdp_session(page)

    def finger(points, steps=10):
        """A real touch drag through Chromium's input pipeline (Playwright only taps)."""
        start = at(page, *points[0])
        send = lambda kind, x, y: touch.send(  # noqa: E731
            "Input.dispatchTouchEvent",
            {"type": kind, "touchPoints": [{"x": x, "y": y}] if kind != "touchEnd" else []},
        )
        send("touchStart", *start)
        last = start
        for point in points[1:]:
            x, y = at(page, *point)
            for i in range(1, steps + 1):
                send(
                    "touchMove",
                    last[0] + (x - last[0]) * i / steps,
                    last[1] + (y - last[1]) * i / steps,
                )
            last = (x, y)
        send("touchEnd", *last)

    finger(STILL_STROKE)
    tool(page, "Moving area 1")
    finger(MOVING_STROKE)
    tool(page, "Path 1")
    finger(PATH)
    assert page.evaluate("window.scrollY") == scrolled  # painting did not scroll the page
    expect(page.locator("#brush-status")).to_have_text(ALL_DRAWN)
    page.tap("#brush-canvas")  # on the path tool a tap starts the path again: one point only
    submit(page)
    expect(page.locator("#brush-area-1-error")).to_contain_text("Drag to draw path 1")
    tool(page, "Path 1")
    finger(PATH)
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    submit(page)

    job = job_from(page)
    assets = {asset.role: asset for asset in job.assets.all()}
    assert set(assets) == {AssetRole.STATIC_MASK, AssetRole.DYNAMIC_MASK}
    still = _png(assets[AssetRole.STATIC_MASK].file.read())
    moving = _png(assets[AssetRole.DYNAMIC_MASK].file.read())
    assert still.size == moving.size == size  # the natural size, not the 2048 px drawing
    assert_painted(still, STILL_STROKE, elsewhere=[(0.2, 0.5), MOVING_STROKE[0]])
    assert_painted(moving, MOVING_STROKE, elsewhere=[(0.65, 0.95), STILL_STROKE[0]])
    path = assets[AssetRole.DYNAMIC_MASK].trajectory
    finger_width = 2 * width / box["width"]  # two screen pixels, in the photo's pixels
    assert _near(path[0], (PATH[0][0] * width, PATH[0][1] * height), finger_width)
    assert _near(path[-1], (PATH[-1][0] * width, PATH[-1][1] * height), finger_width)


def _state(job) -> str:
    job.refresh_from_db()
    return job.state


def _png(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    assert picture.format == "PNG"
    return picture.convert("L")


def _shades(mask: Image.Image) -> list[int]:
    return [shade for shade, count in enumerate(mask.histogram()) if count]


def _near(point, expected, tolerance=4) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(point, expected, strict=True))
