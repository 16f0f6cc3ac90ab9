"""The new-job form as a demanding newcomer meets it: the limits said before the upload, the
price with how it is made, a refused submission that keeps the chosen image, "make another like
this" with the source image, and drag-and-drop and paste in a real Chromium."""

import base64
import re

import pytest
from django.urls import reverse

from studio.billing import ledger
from studio.jobs.deletion import delete_video
from studio.models import ImageUpload, Job, JobState, LedgerEntry
from tests.conftest import FAST_PARAMS, make_image_bytes
from tests.factories import make_job

LOCAL = {"provider": "local", "model": "camera-motion-v1", **FAST_PARAMS}


def new_job_url(team) -> str:
    return reverse("job_new", args=[team.slug])


def errors_on(page: str) -> list[str]:
    """Every error the page shows, as text."""
    found = re.findall(
        r'class="(?:field-error|errorlist)[^"]*"[^>]*>(.*?)</(?:div|ul|p)>', page, re.S
    )
    return [re.sub(r"<[^>]+>|\s+", " ", text).strip() for text in found if text.strip()]


def kept_field(page: str) -> tuple[str, str] | None:
    match = re.search(r'<input type="hidden" name="(kept_image|from_job)" value="([^"]+)">', page)
    return (match[1], match[2]) if match else None


def drain(team) -> None:
    available = ledger.account(team).available
    ledger.adjust(team, -available, actor=None, reason="Spent elsewhere")


# --- What the form says before anything is sent ---------------------------------------------
def test_the_form_states_the_image_limits_from_the_settings(personas, client_for, settings):
    settings.MAX_UPLOAD_BYTES = 5 * 1024 * 1024
    settings.MAX_UPLOAD_PIXELS = 12_000_000

    page = client_for(personas.member).get(new_job_url(personas.team)).content.decode()

    limits = re.search(r'<small id="image-limits">(.*?)</small>', page)[1]
    assert limits == (
        "PNG, JPEG or WebP, at most 5 MB and 12 megapixels, each side at least 64 pixels."
    )
    assert 'aria-describedby="image-limits"' in page
    assert 'accept="image/png,image/jpeg,image/webp"' in page


def test_the_price_of_a_per_second_engine_is_rate_times_seconds(personas, client_for):
    client = client_for(personas.member)
    url = reverse("job_price", args=[personas.team.slug])

    partial = client.get(url, {**LOCAL, "duration": 4}).content.decode()

    assert '<strong id="price-amount">4 credits</strong>' in partial
    breakdown = re.search(r'<p id="price-breakdown"[^>]*>(.*?)</p>', partial, re.S)[1]
    assert breakdown.startswith("1 credit per second × 4 seconds = 4 credits")
    page = client.get(new_job_url(personas.team)).content.decode()  # and on the page itself
    assert "1 credit per second × 5 seconds = 5 credits" in page


def test_the_price_of_a_table_priced_provider_names_its_row(personas, client_for, settings):
    settings.AKOOL_API_KEY = "akool-test-key"
    settings.AKOOL_PLAN = "pro"
    url = reverse("job_price", args=[personas.team.slug])
    data = {
        "provider": "akool",
        "model": "image2video",
        "resolution": "1080p",
        "video_length": 10,
        "prompt": "Waves roll in",
    }

    partial = client_for(personas.member).get(url, data).content.decode()

    assert '<strong id="price-amount">50 credits</strong>' in partial, errors_on(partial)
    breakdown = re.search(r'<p id="price-breakdown"[^>]*>(.*?)</p>', partial, re.S)[1]
    assert "Price table row: AKOOL · image2video · 1080p · 10 s → 50 credits per video" in (
        breakdown
    )
    assert "AKOOL image-to-video table" in breakdown  # where the figure comes from


# --- A refusal keeps the image ----------------------------------------------------------------
def test_a_refusal_for_credits_says_only_that_and_keeps_the_image(
    personas, client_for, image_upload, django_capture_on_commit_callbacks
):
    drain(personas.team)
    client = client_for(personas.member)
    url = new_job_url(personas.team)

    refused = client.post(url, {**LOCAL, "image": image_upload("JPEG", (800, 500))})

    page = refused.content.decode()
    assert refused.status_code == 200
    assert not Job.objects.exists()
    errors = errors_on(page)
    assert len(errors) == 1, errors
    assert "credits" in errors[0].lower()
    field, value = kept_field(page)
    assert field == "kept_image"
    kept = ImageUpload.objects.get(pk=value)
    assert (kept.team, kept.width, kept.height) == (personas.team, 800, 500)
    preview = reverse("upload_preview", args=[personas.team.slug, kept.pk])
    assert f'data-kept-src="{preview}"' in page
    assert "the image you chose before (800×500 pixels)" in page
    shown = client.get(preview)
    assert shown.status_code == 200
    assert b"".join(shown.streaming_content)[:3] == b"\xff\xd8\xff"  # the JPEG itself

    ledger.grant(personas.team, 100, actor=None, reason="Topped up")
    reservations = LedgerEntry.objects.filter(kind="reserve").count()
    with django_capture_on_commit_callbacks(execute=False):
        accepted = client.post(url, {**LOCAL, "kept_image": value})  # no file chosen again

    job = Job.objects.get()
    assert accepted.status_code == 302
    assert accepted.url == reverse("job_detail", args=[personas.team.slug, job.pk])
    assert job.input_image.name == kept.file.name
    assert (job.input_width, job.input_height) == (800, 500)
    assert LedgerEntry.objects.filter(kind="reserve").count() == reservations + 1
    assert LedgerEntry.objects.filter(kind="reserve", job=job).count() == 1
    assert ImageUpload.objects.count() == 1  # kept once, not once per try


def test_a_new_file_replaces_the_kept_image(personas, client_for, image_upload):
    drain(personas.team)
    client = client_for(personas.member)
    url = new_job_url(personas.team)
    _, first = kept_field(client.post(url, {**LOCAL, "image": image_upload()}).content.decode())

    page = client.post(
        url, {**LOCAL, "kept_image": first, "image": image_upload("PNG", (300, 200))}
    ).content.decode()

    _, second = kept_field(page)
    assert second != first
    assert (
        ImageUpload.objects.get(pk=second).width,
        ImageUpload.objects.get(pk=second).height,
    ) == (
        300,
        200,
    )


def test_a_refused_image_is_not_kept(personas, client_for, image_upload):
    page = (
        client_for(personas.member)
        .post(new_job_url(personas.team), {**LOCAL, "image": image_upload(size=(40, 40))})
        .content.decode()
    )

    assert "each side must be at least 64 pixels" in page
    assert kept_field(page) is None
    assert not ImageUpload.objects.exists()


def test_another_teams_kept_image_is_refused_and_never_shown(personas, client_for, image_upload):
    theirs = ImageUpload(team=personas.outsider_team, width=640, height=400, size=10)
    theirs.file.save("theirs.png", image_upload(), save=True)
    client = client_for(personas.member)

    response = client.post(new_job_url(personas.team), {**LOCAL, "kept_image": str(theirs.pk)})

    page = response.content.decode()
    assert not Job.objects.exists()
    assert "The image kept from before is no longer available" in page
    assert kept_field(page) is None  # never offered again, never previewed
    assert str(theirs.pk) not in page
    assert (
        client.get(reverse("upload_preview", args=[personas.team.slug, theirs.pk])).status_code
        == 404
    )
    # The outsider, on their own team's address, sees it; on ours, nothing at all.
    outsider = client_for(personas.outsider)
    assert (
        outsider.get(
            reverse("upload_preview", args=[personas.outsider_team.slug, theirs.pk])
        ).status_code
        == 200
    )
    assert (
        outsider.get(reverse("upload_preview", args=[personas.team.slug, theirs.pk])).status_code
        == 404
    )


# --- Make another like this -------------------------------------------------------------------
def test_make_another_like_this_submits_with_the_source_image(
    personas, client_for, django_capture_on_commit_callbacks
):
    source = make_job(personas.team, personas.member, state=JobState.SUCCEEDED)
    client = client_for(personas.member)
    url = new_job_url(personas.team)

    page = client.get(f"{url}?from={source.pk}").content.decode()

    assert kept_field(page) == ("from_job", str(source.pk))
    input_url = reverse("job_file", args=[personas.team.slug, source.pk, "input"])
    assert f'data-kept-src="{input_url}"' in page
    assert "the image of the video you started from (640×400 pixels)" in page

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {**LOCAL, "from_job": str(source.pk)})

    job = Job.objects.exclude(pk=source.pk).get()
    assert response.status_code == 302
    assert job.input_image.name == source.input_image.name  # shared, as a retried job's
    assert (job.input_width, job.input_height) == (640, 400)
    assert delete_video(personas.membership(personas.member), source)
    source.refresh_from_db()
    assert job.input_image.storage.exists(job.input_image.name)  # deleting one keeps the other's


def test_make_another_from_another_teams_job_is_refused(personas, client_for):
    ledger.grant(personas.outsider_team, 10, actor=None, reason="Their budget")
    theirs = make_job(personas.outsider_team, personas.outsider, state=JobState.SUCCEEDED)
    client = client_for(personas.member)

    page = client.get(f"{new_job_url(personas.team)}?from={theirs.pk}").content.decode()
    assert kept_field(page) is None
    response = client.post(new_job_url(personas.team), {**LOCAL, "from_job": str(theirs.pk)})

    assert "The image kept from before is no longer available" in response.content.decode()
    assert list(Job.objects.filter(team=personas.team)) == []


# --- In a real Chromium -----------------------------------------------------------------------
PNG_B64 = base64.b64encode(make_image_bytes("PNG", (640, 400))).decode()

# A File made in the page from the picture's bytes, as a drop or a paste would carry it.
MAKE_TRANSFER = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
  return transfer;
}"""


def chosen_file(page) -> str:
    return page.evaluate(
        "() => { const f = document.querySelector('input[name=image]').files;"
        " return f.length ? `${f[0].name} ${f[0].size}` : '' }"
    )


def previewed(page) -> str:
    page.wait_for_function(
        "() => document.getElementById('crop-preview-caption').textContent !== ''", timeout=10_000
    )
    assert page.locator("#crop-preview").is_visible()
    return page.locator("#crop-preview-caption").inner_text()


def box(page, selector) -> dict:
    return page.locator(selector).bounding_box()


@pytest.fixture
def member_page(browser, live_server, personas):
    from tests.browser import session_cookie

    def open_page(width, height):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.add_cookies([session_cookie(live_server, personas.member)])
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(live_server.url + new_job_url(personas.team))
        pages.append((page, errors))
        return page

    pages = []
    yield open_page
    for page, errors in pages:
        page.goto("about:blank")  # no poll of a job page may outlive the test database
        page.context.close()
        assert not errors, errors


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_dropped_picture_fills_the_input_and_shows_at_once(member_page, personas):
    page = member_page(1280, 900)
    assert chosen_file(page) == ""
    assert page.locator("#crop-preview-box").is_hidden()

    page.evaluate(
        f"""(b64) => {{
          const transfer = ({MAKE_TRANSFER})(b64);
          const zone = document.getElementById('image-drop');
          for (const type of ['dragenter', 'dragover', 'drop']) {{
            zone.dispatchEvent(new DragEvent(type, {{
              dataTransfer: transfer, bubbles: true, cancelable: true }}));
          }}
        }}""",
        PNG_B64,
    )

    assert chosen_file(page) == f"dropped.png {len(base64.b64decode(PNG_B64))}"
    assert previewed(page) == "The image you chose: 640×400 pixels."
    # Wide: the image and its preview beside the settings and the price.
    image, settings = box(page, ".new-job-image"), box(page, ".new-job-settings")
    assert settings["x"] >= image["x"] + image["width"]
    assert box(page, "#price")["x"] >= image["x"] + image["width"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_pasted_picture_is_kept_through_a_refusal_for_credits(member_page, personas, monkeypatch):
    monkeypatch.setattr("studio.jobs.submit.enqueue_job", lambda job: None)  # no render needed
    drain(personas.team)
    page = member_page(390, 844)  # a phone: one column
    page.evaluate(
        f"""(b64) => document.dispatchEvent(new ClipboardEvent('paste', {{
              clipboardData: ({MAKE_TRANSFER})(b64), bubbles: true, cancelable: true }}))""",
        PNG_B64,
    )
    assert chosen_file(page).startswith("dropped.png ")
    assert previewed(page) == "The image you chose: 640×400 pixels."
    image, settings = box(page, ".new-job-image"), box(page, ".new-job-settings")
    assert settings["y"] >= image["y"] + image["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.get_by_role("button", name="Make the video").click()
    page.wait_for_load_state()
    errors = page.locator(".field-error, .errorlist").all_inner_texts()
    assert [e for e in errors if e.strip()] == [
        "This job costs 5 credits but the team has 0 available: 5 short."
    ]
    assert chosen_file(page) == ""  # a browser cannot refill the input…
    assert previewed(page) == "The image you chose: 640×400 pixels."  # …so we kept it

    ledger.grant(personas.team, 100, actor=None, reason="Topped up")
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}/$"))
    job = Job.objects.get()
    assert (job.input_width, job.input_height) == (640, 400)
    assert job.input_image.name == ImageUpload.objects.get().file.name
    assert LedgerEntry.objects.filter(kind="reserve").count() == 1
