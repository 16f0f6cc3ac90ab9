"""Issue 9: a Content-Security-Policy on every response, HSTS from the environment, and
X-Forwarded-Proto believed only when a setting says a proxy sets it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse

from studio.providers import akool_models
from studio.security import effect_preview_origins
from tests.factories import make_job

ROOT = Path(__file__).resolve().parent.parent


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict(response):
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, nothing else
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]
    assert policy["media-src"] == ["'self'", "blob:"]


# --- Content-Security-Policy -----------------------------------------------------------------
@pytest.mark.django_db
def test_pages_partials_and_error_pages_carry_the_policy(client_for, personas):
    client = client_for(personas.member)
    team = personas.team.slug
    job = make_job(personas.team, personas.member, state="running")
    answers = {
        "home": client.get("/"),
        "dashboard": client.get(reverse("dashboard", args=[team])),
        "new job form": client.get(reverse("job_new", args=[team])),
        "provider fields (htmx)": client.get(
            reverse("job_params", args=[team]), {"provider": "local"}, HTTP_HX_REQUEST="true"
        ),
        "job page": client.get(reverse("job_detail", args=[team, job.pk])),
        "status partial (htmx)": client.get(
            reverse("job_status", args=[team, job.pk]), HTTP_HX_REQUEST="true"
        ),
        "404": client.get(
            reverse("job_detail", args=[team, "00000000-0000-0000-0000-000000000000"])
        ),
    }
    for name, response in answers.items():
        assert "Content-Security-Policy" in response, name
        assert_strict(response)
    assert answers["404"].status_code == 404


@pytest.mark.django_db
def test_anonymous_pages_admin_and_api_carry_the_policy(client):
    for url in ["/accounts/login/", "/admin/login/", "/api/v1/docs", "/api/v1/openapi.json"]:
        response = client.get(url)
        assert response.status_code in (200, 302), url
        assert_strict(response)
    refused = client.get("/api/v1/jobs")  # JSON, 401
    assert refused.status_code == 401 and refused["Content-Type"].startswith("application/json")
    assert_strict(refused)


@pytest.mark.django_db
def test_the_effects_gallery_may_show_previews_from_akools_servers_and_nothing_else_may(
    client_for, personas
):
    """The one widening: img-src and media-src gain the origins of AKOOL's listed effects, on the
    page that shows them; scripts never."""
    listed = [
        {
            "code": "squish",
            "name": "Squish",
            "logo": "https://cdn.akool.example/e/squish.png",
            "video_url": "https://media.akool.example/e/squish.mp4",
        }
    ]
    cache.set(akool_models.EFFECTS_KEY, listed)
    assert effect_preview_origins() == ["https://cdn.akool.example", "https://media.akool.example"]

    from django.http import HttpResponse

    from studio.security import CSPMiddleware

    gallery = '<fieldset class="effects" id="effects"><video src="x"></video></fieldset>'
    middleware = CSPMiddleware(lambda request: HttpResponse(gallery))
    from django.test import RequestFactory

    policy = directives(middleware(RequestFactory().get("/")))
    assert policy["media-src"] == ["'self'", "blob:", *effect_preview_origins()]
    assert policy["img-src"] == ["'self'", "data:", "blob:", *effect_preview_origins()]
    assert policy["script-src"] == ["'self'"]

    other_page = client_for(personas.member).get(reverse("dashboard", args=[personas.team.slug]))
    assert_strict(other_page)  # no gallery: no widening


# --- Settings from the environment (in a fresh process, as at start-up) -----------------------
PROBE = """
import django, json
django.setup()
from django.conf import settings
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory

def answer(request):
    return HttpResponse(json.dumps({"secure": request.is_secure()}))

middleware = SecurityMiddleware(answer)
factory = RequestFactory()
plain = middleware(factory.get("/", HTTP_X_FORWARDED_PROTO="https"))
tls = middleware(factory.get("/", secure=True))
print(json.dumps({
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "forwarded_host": settings.USE_X_FORWARDED_HOST,
    "forwarded_status": plain.status_code,
    "forwarded_location": plain.get("Location"),
    "forwarded_body": plain.content.decode() if plain.status_code == 200 else None,
    "hsts": tls.get("Strict-Transport-Security"),
}))
"""


def start(code: str = PROBE, **env) -> subprocess.CompletedProcess:
    keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH"}
    clean = {k: v for k, v in os.environ.items() if k in keep}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean
        | {"DJANGO_SETTINGS_MODULE": "project.settings", "ALLOWED_HOSTS": "testserver"}
        | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def probe(**env) -> dict:
    result = start(**env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hsts_settings_come_from_the_environment():
    assert probe(SECURE_HSTS_SECONDS="31536000")["hsts"] == "max-age=31536000"
    full = probe(
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="yes",
    )
    assert full["hsts"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.parametrize("name", ["SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"])
def test_a_bad_hsts_value_stops_start_up_naming_the_variable(name):
    result = start("import django; django.setup()", **{name: "perhaps"})
    assert result.returncode != 0
    assert f"{name} must be one of true/false" in result.stderr


def test_a_bad_proxy_trust_value_stops_start_up_naming_the_variable():
    result = start("import django; django.setup()", TRUST_X_FORWARDED_PROTO="nginx")
    assert result.returncode != 0
    assert "TRUST_X_FORWARDED_PROTO must be one of true/false" in result.stderr


def test_x_forwarded_proto_is_ignored_by_default():
    """A client's own X-Forwarded-Proto: https does not make plain HTTP count as HTTPS: the
    request is still redirected to https, and is not secure."""
    answer = probe(SECURE_SSL_REDIRECT="true")
    assert answer["proxy_header"] is None and answer["forwarded_host"] is False
    assert answer["forwarded_status"] == 301
    assert answer["forwarded_location"] == "https://testserver/"
    answer = probe()
    assert json.loads(answer["forwarded_body"]) == {"secure": False}


def test_x_forwarded_proto_is_honoured_when_a_proxy_is_said_to_set_it():
    answer = probe(SECURE_SSL_REDIRECT="true", TRUST_X_FORWARDED_PROTO="true")
    assert answer["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert answer["forwarded_status"] == 200  # already HTTPS at the proxy: no redirect
    assert json.loads(answer["forwarded_body"]) == {"secure": True}


@pytest.mark.django_db
def test_the_policy_built_once_is_the_settings_policy_and_follows_them(client, settings):
    from csp.utils import build_policy

    assert client.get("/accounts/login/")["Content-Security-Policy"] == build_policy()
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert client.get("/accounts/login/")["Content-Security-Policy"] == "default-src 'none'"
