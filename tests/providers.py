"""Running the product against the provider simulators: fixtures and a driver for the engine."""

import time

import pytest
from django.utils import timezone

from studio.jobs import engine
from studio.jobs.submit import submit_job
from studio.models import Job
from studio.providers import http

TIME_SCALE = 0.02  # a documented 10 s poll interval becomes 0.2 s
STABILITY_KEY = "sk-test-stability-0123456789"
MODELSLAB_KEY = "ml-test-key-0123456789"


@pytest.fixture
def site():
    """A stand-in for our product that the simulators fetch from and post webhooks to."""
    from tests.simulators.local_site import LocalSite

    site = LocalSite()
    yield site
    site.close()


@pytest.fixture
def stability(settings):
    from tests.simulators import StabilitySimulator

    with StabilitySimulator(STABILITY_KEY, time_scale=TIME_SCALE) as sim:
        settings.STABILITY_API_KEY = STABILITY_KEY
        settings.STABILITY_BASE_URL = sim.base_url
        settings.PROVIDER_TIME_SCALE = TIME_SCALE
        http.reset_clients()
        yield sim
    http.reset_clients()


@pytest.fixture
def modelslab(settings, live_server):
    """ModelsLab's simulator (Basic plan). It fetches our signed input URLs and posts webhooks to
    our app over real HTTP, so the app is served by pytest-django's live server."""
    from tests.simulators import ModelsLabSimulator

    with ModelsLabSimulator(MODELSLAB_KEY, plan="basic", time_scale=TIME_SCALE) as sim:
        settings.MODELSLAB_API_KEY = MODELSLAB_KEY
        settings.MODELSLAB_BASE_URL = sim.base_url
        settings.MODELSLAB_PLAN = "basic"
        settings.PROVIDER_TIME_SCALE = TIME_SCALE
        settings.PUBLIC_BASE_URL = live_server.url
        http.reset_clients()
        yield sim
    http.reset_clients()


@pytest.fixture
def member(personas):
    """The persona who submits jobs in the provider tests."""
    return personas.membership(personas.member)


def ledger_kinds(job) -> list[str]:
    return list(job.ledger.order_by("id").values_list("kind", flat=True))


def state_of(job) -> str:
    return Job.objects.get(pk=job.pk).state


def submit(membership, image, provider, **params) -> Job:
    return submit_job(membership, image, provider, params)


def run_engine_until(done, *, timeout=15.0, pause=0.02):
    """Tick the engine (as `run_engine` would) until `done()` is true."""
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        engine.tick()
        if done():
            return True
        time.sleep(pause)
    return False


def settled(job) -> bool:
    job.refresh_from_db()
    return job.is_terminal


def make_due(job) -> None:
    Job.objects.filter(pk=job.pk).update(next_poll_at=timezone.now())


AIML_KEY = "aiml-test-key-0123456789"


@pytest.fixture
def aimlapi(settings, live_server):
    """The AI/ML API's simulator (Kling v1 standard). It fetches our signed image, end frame and
    mask URLs over real HTTP, so the app is served by pytest-django's live server."""
    from tests.simulators import AimlApiSimulator

    with AimlApiSimulator(AIML_KEY, time_scale=TIME_SCALE) as sim:
        settings.AIML_API_KEY = AIML_KEY
        settings.AIML_BASE_URL = sim.base_url
        settings.AIML_API_PATH = "seed"
        settings.PROVIDER_TIME_SCALE = TIME_SCALE
        settings.PUBLIC_BASE_URL = live_server.url
        http.reset_clients()
        yield sim
    http.reset_clients()


AKOOL_CLIENT_ID = "studio-akool-001"  # 16 bytes: the IV of its encrypted callbacks
AKOOL_CLIENT_SECRET = "akool-test-secret-0123456789abcd"  # 32 bytes: their AES key
AKOOL_KEY = "akool-test-api-key-0123456789"


@pytest.fixture
def akool(settings, live_server):
    """AKOOL's simulator (pro plan), reached with a getToken token; it also takes AKOOL_KEY as
    x-api-key. It fetches our signed image and audio URLs and posts its encrypted callbacks to
    our app over real HTTP, so the app is served by pytest-django's live server."""
    from tests.simulators import AkoolSimulator

    with AkoolSimulator(
        AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET, api_key=AKOOL_KEY, time_scale=TIME_SCALE
    ) as sim:
        settings.AKOOL_API_KEY = ""
        settings.AKOOL_CLIENT_ID = AKOOL_CLIENT_ID
        settings.AKOOL_CLIENT_SECRET = AKOOL_CLIENT_SECRET
        settings.AKOOL_BASE_URL = sim.base_url
        settings.AKOOL_TOKEN_URL = sim.token_url
        settings.AKOOL_PLAN = "pro"
        settings.PROVIDER_TIME_SCALE = TIME_SCALE
        settings.PUBLIC_BASE_URL = live_server.url
        http.reset_clients()
        yield sim
    http.reset_clients()
