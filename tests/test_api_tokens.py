"""API tokens: shown once and stored as a digest, acting as their member with the member's
current role, walled to their team, revocable; the command line makes one for scripts."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from studio.api.tokens import authenticate, create_token
from studio.models import ApiToken, Membership, Role, TokenScope

pytestmark = pytest.mark.django_db
TEAM_URL = "/api/v1/team"


def bearer(raw):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_token_is_stored_only_as_a_digest_and_acts_as_its_member(personas, client):
    token, raw = create_token(personas.membership(personas.member), "shop sync", "rw")
    assert raw.startswith("stu_") and len(raw) > 40
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw not in (stored.digest, stored.prefix) and raw.startswith(stored.prefix)
    answer = client.get(TEAM_URL, **bearer(raw))
    assert answer.status_code == 200
    body = answer.json()
    assert body["slug"] == personas.team.slug and body["your_role"] == Role.MEMBER
    assert {m["email"] for m in body["members"]} == {
        "owner@a.test",
        "member@a.test",
        "viewer@a.test",
    }
    assert body["token_scope"] == TokenScope.READ_WRITE
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


@pytest.mark.parametrize(
    "header",
    ["", "Bearer ", "Bearer stu_nope", "Basic abc", "Bearer " + "x" * 5000, "Bearer stu_\x00"],
)
def test_a_missing_or_bad_token_answers_401_in_the_error_shape(client, personas, header):
    answer = client.get(TEAM_URL, HTTP_AUTHORIZATION=header)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_a_revoked_token_or_one_whose_member_left_stops_working(personas, client):
    member = personas.membership(personas.member)
    token, raw = create_token(member, "ci", "read")
    assert client.get(TEAM_URL, **bearer(raw)).status_code == 200
    other, other_raw = create_token(member, "old", "read")
    other.revoked_at = other.created_at
    other.save()
    assert client.get(TEAM_URL, **bearer(other_raw)).status_code == 401
    Membership.objects.filter(pk=member.pk).delete()
    assert authenticate(raw) is None
    assert client.get(TEAM_URL, **bearer(raw)).status_code == 401


def test_the_token_follows_the_members_current_role(personas, client):
    member = personas.membership(personas.member)
    _, raw = create_token(member, "ci", "read")
    Membership.objects.filter(pk=member.pk).update(role=Role.VIEWER)
    assert client.get(TEAM_URL, **bearer(raw)).json()["your_role"] == Role.VIEWER


def test_a_viewer_may_make_read_tokens_only(personas):
    viewer = personas.membership(personas.viewer)
    create_token(viewer, "dashboard", "read")
    with pytest.raises(Exception, match="read-only tokens only"):
        create_token(viewer, "writer", "rw")


def test_the_settings_page_shows_a_new_token_once_and_revokes(personas, client_for):
    client = client_for(personas.member)
    url = reverse("token_create", args=[personas.team.slug])
    page = client.post(url, {"name": "shop sync", "scope": "rw"}).content.decode()
    token = ApiToken.objects.get()
    shown = page.split('id="new-token"')[1].split("<code>")[1].split("</code>")[0]
    assert shown.startswith(token.prefix) and authenticate(shown) is not None
    again = client.get(reverse("team_settings", args=[personas.team.slug])).content.decode()
    assert shown not in again and token.prefix in again
    assert client.post(url, {"name": "", "scope": "rw"}, follow=True).status_code == 200
    assert ApiToken.objects.count() == 1  # no name, no token

    # Another member cannot revoke it; its owner can.
    revoke = reverse("token_revoke", args=[personas.team.slug, token.pk])
    client_for(personas.viewer).post(revoke)
    assert authenticate(shown) is not None
    client_for(personas.member).post(revoke)
    assert authenticate(shown) is None


def test_another_teams_member_cannot_revoke_or_see_the_token(personas, client_for):
    token, raw = create_token(personas.membership(personas.member), "ci", "read")
    outsider = client_for(personas.outsider)
    revoke = reverse("token_revoke", args=[personas.team.slug, token.pk])
    assert outsider.post(revoke).status_code == 404
    assert authenticate(raw) is not None


def test_the_command_prints_a_working_token(personas):
    out = io.StringIO()
    call_command(
        "create_api_token",
        "--email",
        "member@a.test",
        "--team",
        personas.team.slug,
        "--scope",
        "rw",
        stdout=out,
    )
    caller = authenticate(out.getvalue().strip())
    assert caller.team == personas.team and caller.can_write
    with pytest.raises(CommandError, match="not a member"):
        call_command("create_api_token", "--email", "outsider@b.test", "--team", personas.team.slug)
