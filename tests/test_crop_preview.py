"""The crop preview of the new-job form (static/studio/crop.js), in a real Chromium.

A tiny page is served from 127.0.0.1: the real `_crop_preview.html` partial and script, inside a
form shaped like the new-job form (a file input, and Stability's orientation / focus fields).
"""

import functools
import http.server
import io
import threading
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from PIL import Image

from tests.conftest import make_image_bytes

STATIC = Path(__file__).resolve().parent.parent / "static"

STABILITY_FIELDS = """
  <fieldset id="params" class="params"><legend>Settings</legend>
    <label>Orientation <select name="orientation">
      <option value="auto" selected>Auto</option><option value="landscape">Landscape</option>
      <option value="portrait">Portrait</option><option value="square">Square</option>
    </select></label>
    <label>Focus across (%)
      <input type="number" name="focus_x" min="0" max="100" value="50"></label>
    <label>Focus down (%)
      <input type="number" name="focus_y" min="0" max="100" value="50"></label>
  </fieldset>"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/css/studio.css"><title>Crop preview</title></head>
<body><main>
<form id="new-job" class="stack">
  <label>Image <input type="file" name="image" accept="image/*"></label>
  {preview}
  {fields}
</form></main>
<script>
  window.formChanges = [];
  document.getElementById("new-job").addEventListener("change", (e) => {{
    if (e.target.name !== "image") formChanges.push(e.target.name);
  }});
</script>
</body></html>"""


@pytest.fixture
def site(tmp_path, settings):
    """Serves tmp_path (the pages) and /static/ (the project's files) on 127.0.0.1."""
    settings.STATIC_URL = "/static/"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    preview = render_to_string("studio/_crop_preview.html")
    assert 'src="/static/studio/crop.js"' in preview
    (tmp_path / "static").symlink_to(STATIC, target_is_directory=True)
    (tmp_path / "stability.html").write_text(PAGE.format(preview=preview, fields=STABILITY_FIELDS))
    (tmp_path / "plain.html").write_text(PAGE.format(preview=preview, fields=""))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def picture_file(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def open_with(page, url, photo):
    page.goto(url)
    assert page.locator("#crop-preview-box").is_hidden()  # nothing to show before a file
    page.set_input_files("input[name=image]", photo)
    page.wait_for_function(
        "() => document.getElementById('crop-preview-caption').textContent !== ''"
    )
    return page.locator("#crop-preview")


def caption(page) -> str:
    return page.locator("#crop-preview-caption").inner_text()


def canvas_brightness(page, fx, fy) -> float:
    """Mean of R, G, B at (fx, fy), fractions of the canvas."""
    return page.evaluate(
        """([fx, fy]) => {
          const c = document.getElementById('crop-preview');
          const x = Math.min(c.width - 1, Math.floor(fx * c.width));
          const y = Math.min(c.height - 1, Math.floor(fy * c.height));
          const [r, g, b] = c.getContext('2d').getImageData(x, y, 1, 1).data;
          return (r + g + b) / 3;
        }""",
        [fx, fy],
    )


@pytest.mark.browser
def test_a_click_near_the_right_edge_moves_the_focus_right(site, phone, tmp_path):
    photo = picture_file(tmp_path, "landscape.jpg", make_image_bytes("JPEG", (1600, 1000)))
    canvas = open_with(phone, site + "/stability.html", photo)

    assert "Stability receives this part, resized to 1024×576" in caption(phone)
    assert "1600×1000" in caption(phone)
    assert canvas.get_attribute("aria-label").startswith("Preview of the chosen image")
    box = canvas.bounding_box()
    assert box["width"] > 300 and box["x"] >= 0 and box["x"] + box["width"] <= 390  # on screen
    assert abs(box["height"] / box["width"] - 1000 / 1600) < 0.02  # the picture's own aspect
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390

    phone.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    focus_x = int(phone.input_value("input[name=focus_x]"))
    assert focus_x > 50 and focus_x >= 95
    assert abs(int(phone.input_value("input[name=focus_y]")) - 50) <= 1
    assert phone.evaluate("formChanges.length") == 1  # one change for the price estimate

    phone.select_option("select[name=orientation]", "portrait")
    phone.wait_for_function(
        "() => document.getElementById('crop-preview-caption').textContent.includes('576×1024')"
    )
    phone.select_option("select[name=orientation]", "square")
    phone.wait_for_function(
        "() => document.getElementById('crop-preview-caption').textContent.includes('768×768')"
    )


@pytest.mark.browser
def test_dragging_darkens_what_is_cut_and_reports_once(site, phone, tmp_path):
    grey = io.BytesIO()
    Image.new("RGB", (2000, 800), (200, 200, 200)).save(grey, "PNG")  # wider than 16:9
    canvas = open_with(
        phone, site + "/stability.html", picture_file(tmp_path, "wide.png", grey.getvalue())
    )
    assert "1024×576" in caption(phone)
    # Centred: both ends are cut away (darkened), the middle is kept.
    assert canvas_brightness(phone, 0.02, 0.5) < 120
    assert canvas_brightness(phone, 0.98, 0.5) < 120
    assert canvas_brightness(phone, 0.5, 0.2) > 180

    box = canvas.bounding_box()
    y = box["y"] + box["height"] / 2
    phone.mouse.move(box["x"] + box["width"] / 2, y)
    phone.mouse.down()
    for step in range(1, 11):
        phone.mouse.move(box["x"] + box["width"] / 2 - step * box["width"] / 20, y)
    assert phone.evaluate("formChanges.length") == 0  # nothing while dragging
    phone.mouse.up()
    assert int(phone.input_value("input[name=focus_x]")) <= 2
    assert phone.evaluate("formChanges") == ["focus_x"]
    phone.wait_for_timeout(100)  # the redraw waits for the next animation frame
    assert canvas_brightness(phone, 0.02, 0.5) > 180  # the left end is kept now
    assert canvas_brightness(phone, 0.98, 0.5) < 120

    # A finger works too (touch-action: none keeps the page from scrolling instead).
    assert "touch-action: none" in canvas.get_attribute("style")
    phone.touchscreen.tap(box["x"] + box["width"] * 0.9, y)
    assert int(phone.input_value("input[name=focus_x]")) >= 85
    assert phone.evaluate("formChanges") == ["focus_x", "focus_x"]

    # Both focus fields change: each hears its change, the form hears one.
    phone.evaluate(
        "window.ownChanges = [];"
        "for (const n of ['focus_x', 'focus_y']) document.querySelector(`[name=${n}]`)"
        ".addEventListener('change', () => ownChanges.push(n))"
    )
    phone.mouse.click(box["x"] + 2, box["y"] + 2)
    assert int(phone.input_value("input[name=focus_y]")) <= 2
    assert sorted(phone.evaluate("ownChanges")) == ["focus_x", "focus_y"]
    assert len(phone.evaluate("formChanges")) == 3
    phone.screenshot(path=str(tmp_path / "crop.png"), full_page=True)

    # Typing a focus redraws as well.
    phone.fill("input[name=focus_x]", "0")
    phone.wait_for_timeout(100)
    assert canvas_brightness(phone, 0.02, 0.5) > 180


@pytest.mark.browser
def test_an_exif_rotated_phone_photo_is_previewed_upright(site, phone, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 1600×900, shown 900×1600
    data = io.BytesIO()
    Image.open(io.BytesIO(make_image_bytes("JPEG", (1600, 900)))).save(data, "JPEG", exif=exif)
    open_with(phone, site + "/stability.html", picture_file(tmp_path, "phone.jpg", data.getvalue()))
    assert "resized to 576×1024" in caption(phone)
    assert "900×1600" in caption(phone)


@pytest.mark.browser
def test_without_stability_fields_it_is_a_plain_preview(site, phone, tmp_path):
    photo = picture_file(tmp_path, "photo.png", make_image_bytes("PNG", (640, 400)))
    canvas = open_with(phone, site + "/plain.html", photo)
    assert caption(phone) == "The image you chose: 640×400 pixels."
    assert canvas.is_visible()
    box = canvas.bounding_box()
    phone.mouse.click(box["x"] + box["width"] - 3, box["y"] + 3)  # nothing to move, no error
    assert canvas_brightness(phone, 0.02, 0.5) > 100  # drawn (mid-grey there), not darkened

    phone.set_input_files("input[name=image]", [])
    phone.wait_for_function("() => document.getElementById('crop-preview-box').hidden")

    phone.set_input_files(
        "input[name=image]",
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a picture"}],
    )
    phone.wait_for_function(
        "() => document.getElementById('crop-preview-caption').textContent"
        ".includes('cannot be previewed')"
    )
    assert phone.locator("#crop-preview").is_hidden()
