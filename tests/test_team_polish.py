"""Teams, polished: renaming, personal teams' names, links to the address people reached, and
invitation links shown again with a copy button."""

import pytest
from django.core import mail

from studio import teams
from studio.models import AuditEntry, Invite, Membership, Role, Team, User


def settings_url(team) -> str:
    return f"/t/{team.slug}/settings/"


# --- Renaming -------------------------------------------------------------------------------
def test_an_owner_renames_the_team_and_its_slug_and_tokens_stay(personas, client_for):
    slug = personas.team.slug
    client = client_for(personas.owner)
    response = client.post(settings_url(personas.team), {"name": "  Night shift  "}, follow=True)
    assert response.redirect_chain[-1][0] == settings_url(personas.team)
    assert "The team is now called Night shift." in response.content.decode()
    team = Team.objects.get(pk=personas.team.pk)
    assert (team.name, team.slug) == ("Night shift", slug)
    assert client.get(f"/t/{slug}/").status_code == 200
    entry = AuditEntry.objects.get(action="team.rename")
    assert entry.actor == personas.owner
    assert (entry.before, entry.after) == ({"name": "Team A"}, {"name": "Night shift"})


def test_an_admin_may_rename_but_a_member_is_refused_and_an_outsider_sees_nothing(
    personas, client_for
):
    Membership.objects.filter(user=personas.viewer).update(role=Role.ADMIN)
    assert client_for(personas.viewer).post(settings_url(personas.team), {"name": "By admin"})
    assert Team.objects.get(pk=personas.team.pk).name == "By admin"
    member_page = client_for(personas.member).get(settings_url(personas.team)).content.decode()
    assert "team-rename" not in member_page  # not offered...
    refused = client_for(personas.member).post(settings_url(personas.team), {"name": "Mine"})
    assert refused.status_code == 403  # ...and refused, as every management action is
    hidden = client_for(personas.outsider).post(settings_url(personas.team), {"name": "Ours"})
    assert hidden.status_code == 404
    assert Team.objects.get(pk=personas.team.pk).name == "By admin"
    with pytest.raises(teams.TeamError, match="Only owners and admins"):
        teams.rename_team(personas.membership(personas.member), "Mine")


@pytest.mark.parametrize(
    "name, message",
    [
        ("   ", "A team needs a name."),
        ("x" * 81, "at most 80 characters (this one has 81)"),
        ("Bad\x00name", "A team name cannot contain a NUL character."),
    ],
)
def test_a_bad_name_is_refused_beside_the_name_field(personas, client_for, name, message):
    response = client_for(personas.owner).post(settings_url(personas.team), {"name": name})
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    errors = page.index('id="rename-errors"')
    assert page.rindex('name="name"', 0, errors) > page.rindex("<form", 0, errors)
    assert Team.objects.get(pk=personas.team.pk).name == "Team A"
    assert not AuditEntry.objects.exists()


def test_the_domain_refuses_a_bad_name_whoever_calls_it(personas):
    owner = personas.membership(personas.owner)
    for name in ["", " \t", "a\x00", "y" * 81]:
        with pytest.raises(teams.TeamError):
            teams.rename_team(owner, name)
    assert teams.rename_team(owner, "y" * 80).name == "y" * 80


# --- Personal teams -------------------------------------------------------------------------
def test_a_personal_team_is_named_after_its_owner(db):
    user = User.objects.create_user(
        "ada@example.test", "pw", first_name="Ada", last_name="Lovelace"
    )
    assert user.teams.get().name == "Ada Lovelace's team"


def test_a_personal_team_is_named_from_the_address_local_part_never_the_whole_address(client, db):
    client.post(
        "/accounts/signup/",
        {
            "email": "grace.hopper@navy.example",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    team = User.objects.get(email="grace.hopper@navy.example").teams.get()
    assert team.name == "grace.hopper's team" and team.is_personal


def test_a_long_name_still_makes_a_personal_team(db):
    user = User.objects.create_user("long@example.test", "pw", first_name="A" * 150)
    name = user.teams.get().name
    assert len(name) == 80 and name.endswith("'s team")


# --- Links to where the person is -----------------------------------------------------------
def test_an_invite_links_to_the_host_and_port_the_inviter_reached(
    personas, client_for, django_capture_on_commit_callbacks, settings
):
    settings.PUBLIC_BASE_URL = "https://studio.example"
    client = client_for(personas.owner)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            f"/t/{personas.team.slug}/settings/invites/",
            {"email": "new@x.test", "role": "member"},
            HTTP_HOST="testserver:8123",
        )
        client.post(
            f"/t/{personas.team.slug}/settings/invites/",
            {"email": "", "role": "member"},
            HTTP_HOST="testserver:8123",
        )
    mailed = Invite.objects.get(email="new@x.test")
    assert f"http://testserver:8123/invites/{mailed.token}/" in mail.outbox[0].body
    link = Invite.objects.get(email="")
    page = client.get(settings_url(personas.team), HTTP_HOST="testserver:8123").content.decode()
    assert f'id="invite-link" value="http://testserver:8123/invites/{link.token}/"' in page
    assert "studio.example" not in page + mail.outbox[0].body


def test_outside_a_request_an_invite_links_to_the_public_base_url(personas, settings):
    settings.PUBLIC_BASE_URL = "https://studio.example"
    invite = teams.invite(personas.membership(personas.owner))
    assert teams.invite_url(invite) == f"https://studio.example/invites/{invite.token}/"


def test_a_pending_invite_link_is_shown_again_to_an_admin_not_to_a_member(personas, client_for):
    owner = personas.membership(personas.owner)
    pending = teams.invite(owner, email="later@x.test")
    revoked = teams.invite(owner)
    teams.revoke_invite(owner, revoked)
    Membership.objects.filter(user=personas.viewer).update(role=Role.ADMIN)
    admin_page = client_for(personas.viewer).get(settings_url(personas.team)).content.decode()
    assert f'value="http://testserver/invites/{pending.token}/"' in admin_page
    assert f'data-copy="invite-link-{pending.pk}"' in admin_page
    assert revoked.token not in admin_page
    member_page = client_for(personas.member).get(settings_url(personas.team)).content.decode()
    assert pending.token not in member_page


# --- In a browser ---------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_copy_button_puts_the_invite_link_on_the_clipboard(live_server, browser):
    from tests.browser import session_cookie

    owner = User.objects.create_user("owner@copy.test", "pw")
    team = owner.teams.get()
    invite = teams.invite(team.memberships.get())
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.add_cookies([session_cookie(live_server, owner)])
    page = context.new_page()
    page.goto(f"{live_server.url}/t/{team.slug}/settings/")
    page.get_by_text("Show link").click()
    button = page.locator(f'button[data-copy="invite-link-{invite.pk}"]')
    button.click()
    page.wait_for_function("b => b.textContent === 'Copied'", arg=button.element_handle())
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"{live_server.url}/invites/{invite.token}/"
    context.close()
