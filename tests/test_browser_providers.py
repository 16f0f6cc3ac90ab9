"""A member runs a Stability job and both ModelsLab models from the browser, against the
simulators, with a real `qcluster` worker and a real `run_engine` loop: queued → a playing video,
charged the documented price."""

import re

import pytest
from django_q.conf import Conf

from studio.billing import staff
from studio.models import PriceBookVersion
from studio.providers import http
from tests.browser import fill_params, session_cookie
from tests.conftest import make_image_bytes
from tests.providers import MODELSLAB_KEY, STABILITY_KEY
from tests.simulators import ModelsLabSimulator, StabilitySimulator
from tests.worker import running_workers

TIME_SCALE = 0.05


@pytest.fixture
def simulators(settings, live_server):
    with (
        StabilitySimulator(STABILITY_KEY, time_scale=TIME_SCALE) as stability,
        ModelsLabSimulator(MODELSLAB_KEY, time_scale=TIME_SCALE) as modelslab,
    ):
        env = {
            "STABILITY_API_KEY": STABILITY_KEY,
            "STABILITY_BASE_URL": stability.base_url,
            "MODELSLAB_API_KEY": MODELSLAB_KEY,
            "MODELSLAB_BASE_URL": modelslab.base_url,
            "PROVIDER_TIME_SCALE": str(TIME_SCALE),
            "PUBLIC_BASE_URL": live_server.url,
        }
        for name, value in env.items():
            setattr(settings, name, float(value) if name == "PROVIDER_TIME_SCALE" else value)
        http.reset_clients()
        yield stability, modelslab, env
    http.reset_clients()


@pytest.fixture
def workers(monkeypatch, simulators, transactional_db):
    monkeypatch.setattr(Conf, "SYNC", False)
    with running_workers(simulators[2]):
        yield


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("provider", "model", "fields", "price"),
    [
        ("stability", "stable-video-diffusion", {"motion_bucket_id": "200"}, 20),
        ("modelslab", "img2video_ultra", {"prompt": "waves roll in"}, 31),
        ("modelslab", "img2video", {"num_frames": "16", "output_type": "gif"}, 12),
    ],
)
def test_a_member_runs_a_provider_job_from_the_browser(
    live_server, simulators, workers, browser, personas, tmp_path, provider, model, fields, price
):
    stability, modelslab, _ = simulators
    if model == "img2video":  # no published price: staff set one first
        version = PriceBookVersion.objects.latest()
        rule = version.rules.get(provider="modelslab", model="img2video")
        staff.edit_prices(None, version.pk, {rule.pk: {"per_video": 12}}, note="pilot price")
    photo = tmp_path / "harbour.jpg"
    photo.write_bytes(make_image_bytes("JPEG", (1600, 1000)))
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_cookies([session_cookie(live_server, personas.member)])
    page = context.new_page()
    page.goto(f"{live_server.url}/t/{personas.team.slug}/jobs/new/")
    page.set_input_files("input[name=image]", str(photo))
    page.select_option("select[name=provider]", provider)
    page.wait_for_selector("select[name=model]")
    page.select_option("select[name=model]", model)
    page.wait_for_load_state("networkidle")  # the model's fields have been swapped in
    page.wait_for_function(f"() => !!document.querySelector('#params [name={next(iter(fields))}]')")
    fill_params(page, fields)
    page.wait_for_function(
        f"() => document.querySelector('#price-amount')?.textContent.startsWith('{price} credit')"
    )
    page.get_by_role("button", name="Make the video").click()
    page.wait_for_load_state()
    refusals = page.locator(".field-error, .errorlist").all_inner_texts() + page.evaluate(
        "[...document.querySelectorAll('#new-job :invalid')].map(e => e.name + ': ' +"
        " e.validationMessage)"
    )
    assert re.search(r"/jobs/[0-9a-f-]{36}/$", page.url), refusals
    page.wait_for_function(
        "() => { const v = document.querySelector('video');"
        " return v && v.readyState >= 1 && v.duration > 0 }",
        timeout=60_000,
    )
    assert page.get_by_text(f"Charged {price} credits").is_visible()
    html = page.content()
    assert stability.base_url not in html and modelslab.root_url not in html
    assert stability.violations == [] and modelslab.violations == []
    page.screenshot(path=str(tmp_path / f"{provider}.png"), full_page=True)
