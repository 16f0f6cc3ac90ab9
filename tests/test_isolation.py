"""Tenants are walled: every team route answers 404 to someone outside the team."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from studio import teams
from studio.api.tokens import create_token
from studio.models import ImageUpload, Role, WebhookDelivery, WebhookEndpoint
from studio.outbound.endpoints import new_secret
from tests.factories import make_job

# Routes that are not about one team's data; everything else must carry a team.
NOT_TEAM_SCOPED = {"home", "team_create", "invite_accept"}
STAFF_ONLY = {
    "staff_overview",
    "staff_grant",
    "staff_prices",
    "staff_audit",
    "staff_providers",
    "staff_reconciliation",
    "staff_reconciliation_csv",
}
# For providers, not people: each is keyed by an unguessable token or a signature, and answers 404
# to anything else (tests/test_webhooks.py, tests/test_provider_inputs.py).
PROVIDER_FACING = {"provider_callback", "provider_input", "provider_asset"}
# For load balancers and monitoring: nothing of any team; details and metrics only with the
# metrics token or from an allowed network (tests/test_health.py, tests/test_metrics.py).
OPERATIONS = {"healthz", "readyz", "metrics"}
FOREIGN_PREFIXES = ("admin/", "accounts/", "api/")


def walk(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def team_routes() -> list[tuple[str, str]]:
    """(name, route) of every team-scoped pattern; fails on any route nobody has classified."""
    routes = []
    for route, entry in walk(get_resolver().url_patterns):
        if route.startswith(FOREIGN_PREFIXES):
            continue
        if "<slug:team_slug>" in route:
            routes.append((entry.name, route))
        else:
            known = NOT_TEAM_SCOPED | STAFF_ONLY | PROVIDER_FACING | OPERATIONS
            assert entry.name in known, f"{route} is neither team-scoped nor known public"
    return routes


@pytest.fixture
def team_a_objects(personas):
    owner = personas.membership(personas.owner)
    job = make_job(personas.team, personas.member, state="succeeded")
    job.video.save("v.mp4", job.input_image.file, save=False)  # any bytes will do for a 404 check
    job.save()
    endpoint = WebhookEndpoint.objects.create(
        team=personas.team,
        url="https://hooks.example/a",
        events=["job.succeeded"],
        secret=new_secret(),
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, message_id="msg_a", event="job.succeeded", payload={}, state="failed"
    )
    upload = ImageUpload(team=personas.team, width=640, height=400, size=1)
    upload.file.save("kept.png", job.input_image.file, save=True)  # the new-job form keeps one
    return {
        "job_id": job.pk,
        "upload_id": upload.pk,
        "kind": "video",
        "invite_id": teams.invite(owner, email="someone@x.test", role=Role.VIEWER).pk,
        "membership_id": personas.membership(personas.viewer).pk,
        "token_id": create_token(owner, "ci", "read")[0].pk,
        "endpoint_id": endpoint.pk,
        "delivery_id": delivery.pk,
    }


def urls_for(team_slug, objects):
    for name, route in team_routes():
        kwargs = {key: value for key, value in objects.items() if f":{key}>" in route}
        yield name, reverse(name, kwargs={"team_slug": team_slug, **kwargs})


def test_every_team_route_is_found_for_a_member(personas, client_for, team_a_objects):
    """The control: these URLs exist for the owner, so a 404 below is a wall, not a typo."""
    client = client_for(personas.owner)
    for name, url in urls_for(personas.team.slug, team_a_objects):
        assert client.get(url).status_code != 404, name


def test_an_outsider_gets_404_on_every_team_route(personas, client_for, team_a_objects):
    client = client_for(personas.outsider)
    urls = list(urls_for(personas.team.slug, team_a_objects))
    assert len(urls) >= 14
    for name, url in urls:
        for method in (client.get, client.post):
            assert method(url).status_code == 404, f"{method.__name__} {name}"
            assert method(url, headers={"HX-Request": "true"}).status_code == 404, f"htmx {name}"


def test_an_outsider_cannot_reach_team_a_objects_through_their_own_team(
    personas, client_for, team_a_objects
):
    """Their own team's slug with team A's job, invite, membership or token ids: still 404."""
    client = client_for(personas.outsider)
    keys = ("job_id", "upload_id", "invite_id", "membership_id", "token_id", "endpoint_id")
    keys += ("delivery_id",)
    ids = [str(team_a_objects[key]) for key in keys]
    checked = 0
    for name, url in urls_for(personas.outsider_team.slug, team_a_objects):
        if any(f"/{value}/" in url for value in ids):
            checked += 1
            # A POST-only route may answer 405 to GET before any lookup: that reveals nothing.
            assert client.get(url).status_code in (404, 405), name
            assert client.post(url).status_code == 404, name
    assert checked >= 15


def test_a_logged_out_visitor_is_sent_to_log_in(personas, client, team_a_objects):
    for name, url in urls_for(personas.team.slug, team_a_objects):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url, name
