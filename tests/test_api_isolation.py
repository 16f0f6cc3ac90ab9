"""Tenant walls for the API: a token of team B gets 404 for every object of team A on every
route of the schema, and sees none of them in any list; a read token cannot write; a viewer's
token cannot create jobs; signed file links name their team."""

import re

import pytest

from project.api import api
from studio.api.tokens import create_token
from studio.models import ImageUpload, Job, LedgerEntry, WebhookDelivery, WebhookEndpoint
from tests.conftest import make_image_bytes
from tests.factories import make_job

pytestmark = pytest.mark.django_db
SCHEMA = api.get_openapi_schema()
OBJECT_ROUTES = [
    (method, path)
    for path, operations in SCHEMA["paths"].items()
    for method in operations
    if "{" in path
]
LIST_ROUTES = ["/api/v1/jobs", "/api/v1/credits/ledger", "/api/v1/webhooks"]


@pytest.fixture
def team_a_objects(personas):
    from django.core.files.uploadedfile import SimpleUploadedFile

    job = make_job(personas.team, personas.member, state="succeeded")
    image = ImageUpload(team=personas.team, user=personas.member, width=640, height=400, size=1)
    image.file.save("a.png", SimpleUploadedFile("a.png", make_image_bytes()), save=True)
    endpoint = WebhookEndpoint.objects.create(
        team=personas.team, url="https://example.com/hook", events=["job.succeeded"], secret="s"
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, message_id="msg_a", event="job.succeeded", payload={}, state="failed"
    )
    return {
        "job_id": str(job.pk),
        "image_id": str(image.pk),
        "endpoint_id": endpoint.pk,
        "delivery_id": delivery.pk,
    }


def test_every_object_route_is_known_here():
    # A new route with an object id must be added to team_a_objects' ids to be walked below.
    names = {name for _, path in OBJECT_ROUTES for name in re.findall(r"{(\w+)}", path)}
    assert names <= {"job_id", "image_id", "endpoint_id", "delivery_id"}, names


@pytest.mark.parametrize(("method", "path"), OBJECT_ROUTES)
def test_a_token_of_team_b_gets_404_for_team_a_objects(
    client, personas, team_a_objects, method, path
):
    outsider = personas.outsider_team.memberships.get()
    raw = create_token(outsider, "b", "rw")[1]
    url = path.format(**team_a_objects)
    answer = getattr(client, method)(url, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert answer.status_code == 404, (url, answer.content)
    assert answer.json()["error"]["code"] == "not_found"
    job = Job.objects.get(pk=team_a_objects["job_id"])
    assert job.state == "succeeded" and job.deleted_at is None
    assert Job.objects.count() == 1  # nothing retried into either team
    assert WebhookEndpoint.objects.filter(pk=team_a_objects["endpoint_id"]).exists()
    assert WebhookDelivery.objects.get().state == "failed"  # not sent again


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_lists_show_team_b_nothing_of_team_a(client, personas, team_a_objects, path):
    outsider = personas.outsider_team.memberships.get()
    raw = create_token(outsider, "b", "read")[1]
    body = client.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}").json()
    assert (body["items"] if isinstance(body, dict) else body) == []


def test_team_b_cannot_start_a_job_from_team_a_image(client, personas, team_a_objects):
    from studio.billing import ledger

    ledger.grant(personas.outsider_team, 100, actor=None, reason="t")
    raw = create_token(personas.outsider_team.memberships.get(), "b", "rw")[1]
    answer = client.post(
        "/api/v1/jobs",
        data={
            "provider": "local",
            "model": "camera-motion-v1",
            "image_id": team_a_objects["image_id"],
        },
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert answer.status_code == 404
    assert not LedgerEntry.objects.filter(team=personas.outsider_team, kind="reserve").exists()


def test_a_signed_file_link_works_only_for_its_own_team(client, personas, team_a_objects):
    from studio.api.files import SIGNER

    raw = create_token(personas.membership(personas.member), "a", "read")[1]
    job = client.get(
        f"/api/v1/jobs/{team_a_objects['job_id']}", HTTP_AUTHORIZATION=f"Bearer {raw}"
    ).json()
    link = job["input_url"].removeprefix("http://localhost:8000")
    assert client.get(link).status_code == 200
    assert client.get(link.replace("/input/", "/nothing/")).status_code == 404
    job_hex = team_a_objects["job_id"].replace("-", "")
    forged = SIGNER.sign(f"{job_hex}.{personas.outsider_team.pk}")
    assert client.get(f"/api/v1/files/{forged}/input/").status_code == 404
    token = link.split("/")[-3]
    assert client.get(link.replace(token, token[:-4] + "xxxx")).status_code == 404


WRITES = [
    ("post", "/api/v1/jobs"),
    ("post", "/api/v1/images"),
    ("post", "/api/v1/jobs/{job_id}/cancel"),
    ("post", "/api/v1/jobs/{job_id}/retry"),
    ("delete", "/api/v1/jobs/{job_id}"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_read_token_cannot_write(client, personas, team_a_objects, method, path):
    raw = create_token(personas.membership(personas.owner), "r", "read")[1]
    answer = getattr(client, method)(
        path.format(**team_a_objects), HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert answer.status_code == 403 and "read-only" in answer.json()["error"]["message"]
    assert Job.objects.get(pk=team_a_objects["job_id"]).deleted_at is None


def test_a_viewers_token_cannot_create_jobs_even_if_once_read_write(client, personas):
    from studio.models import Membership, Role

    raw = create_token(personas.membership(personas.member), "m", "rw")[1]
    Membership.objects.filter(team=personas.team, user=personas.member).update(role=Role.VIEWER)
    answer = client.post(
        "/api/v1/jobs",
        data={"provider": "local", "model": "camera-motion-v1", "image_url": "http://x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert answer.status_code == 403 and not Job.objects.exists()
