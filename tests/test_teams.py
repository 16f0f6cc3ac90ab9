from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from studio import teams
from studio.models import Invite, Job, Membership, Role, Team, User
from tests.factories import make_job


def test_a_new_user_gets_a_personal_team_they_own(db):
    user = User.objects.create_user("new@x.test", "pw")
    membership = Membership.objects.get(user=user)
    assert membership.team.is_personal and membership.role == Role.OWNER


def test_signing_up_by_email_logs_in_to_the_personal_team(client, db):
    response = client.post(
        "/accounts/signup/",
        {
            "email": "Fresh@Example.test",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
        follow=True,
    )
    assert response.status_code == 200
    user = User.objects.get(email="fresh@example.test")
    assert response.wsgi_request.user == user
    assert response.redirect_chain[-1][0] == f"/t/{user.teams.get().slug}/"


def test_failed_logins_are_throttled_per_account(client, db):
    User.objects.create_user("target@x.test", "the-right-password")
    for _ in range(5):
        response = client.post("/accounts/login/", {"login": "target@x.test", "password": "wrong"})
        assert "Too many failed login attempts" not in response.content.decode()
    response = client.post(
        "/accounts/login/", {"login": "target@x.test", "password": "the-right-password"}
    )
    assert "Too many failed login attempts" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


def test_switching_teams_remembers_the_last_one(personas, client_for):
    client = client_for(personas.member)
    personal = personas.member.teams.get(is_personal=True)
    client.get(f"/t/{personas.team.slug}/")
    assert client.get("/").url == f"/t/{personas.team.slug}/"
    client.get(f"/t/{personal.slug}/")
    assert client.get("/").url == f"/t/{personal.slug}/"


def test_creating_a_team_makes_the_creator_its_owner(personas, client_for):
    response = client_for(personas.viewer).post("/teams/new/", {"name": "Night shift"})
    team = Team.objects.get(name="Night shift")
    assert response.url == f"/t/{team.slug}/"
    assert team.memberships.get().user == personas.viewer
    assert team.memberships.get().role == Role.OWNER


# --- Roles ----------------------------------------------------------------------------------
def test_a_viewer_cannot_submit_but_can_watch(personas, client_for, image_upload):
    client = client_for(personas.viewer)
    assert client.get(f"/t/{personas.team.slug}/jobs/new/").status_code == 403
    assert (
        client.post(f"/t/{personas.team.slug}/jobs/new/", {"image": image_upload()}).status_code
        == 403
    )
    job = make_job(personas.team, personas.member)
    assert client.get(f"/t/{personas.team.slug}/jobs/{job.pk}/").status_code == 200
    assert client.get(f"/t/{personas.team.slug}/jobs/{job.pk}/files/input/").status_code == 200
    assert Job.objects.count() == 1


def test_members_cannot_manage_the_team(personas, client_for):
    client = client_for(personas.member)
    viewer = personas.membership(personas.viewer)
    slug = personas.team.slug
    assert (
        client.post(f"/t/{slug}/settings/members/{viewer.pk}/role/", {"role": "admin"}).status_code
        == 403
    )
    assert client.post(f"/t/{slug}/settings/members/{viewer.pk}/remove/").status_code == 403
    assert (
        client.post(
            f"/t/{slug}/settings/invites/", {"email": "x@y.test", "role": "member"}
        ).status_code
        == 403
    )
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_an_admin_manages_members_but_not_owners(personas):
    admin = personas.membership(personas.member)
    admin.role = Role.ADMIN
    admin.save()
    viewer, owner = personas.membership(personas.viewer), personas.membership(personas.owner)
    teams.change_role(admin, viewer, Role.MEMBER)
    assert viewer.role == Role.MEMBER
    with pytest.raises(teams.TeamError, match="Only an owner"):
        teams.change_role(admin, viewer, Role.OWNER)
    with pytest.raises(teams.TeamError, match="Only an owner"):
        teams.change_role(admin, owner, Role.VIEWER)
    with pytest.raises(teams.TeamError, match="Only an owner"):
        teams.remove_member(admin, owner)


def test_the_last_owner_can_neither_leave_nor_be_demoted(personas, client_for):
    owner = personas.membership(personas.owner)
    with pytest.raises(teams.TeamError, match="last owner cannot be demoted"):
        teams.change_role(owner, owner, Role.ADMIN)
    with pytest.raises(teams.TeamError, match="last owner cannot leave"):
        teams.leave_team(owner)
    response = client_for(personas.owner).post(
        f"/t/{personas.team.slug}/settings/leave/", {"confirm": "yes"}, follow=True
    )
    assert "last owner cannot leave" in response.content.decode()
    # With a second owner, the first may step down.
    teams.change_role(owner, personas.membership(personas.member), Role.OWNER)
    teams.change_role(owner, owner, Role.ADMIN)
    assert personas.team.memberships.owners().get().user == personas.member


def test_jobs_stay_with_the_team_when_their_creator_leaves(personas):
    job = make_job(personas.team, personas.member)
    teams.leave_team(personas.membership(personas.member))
    assert Job.objects.filter(team=personas.team, pk=job.pk).exists()


# --- Invites --------------------------------------------------------------------------------
def test_an_email_invite_is_mailed_and_works_once_for_that_address(
    personas, django_capture_on_commit_callbacks
):
    owner = personas.membership(personas.owner)
    with django_capture_on_commit_callbacks(execute=True):
        invite = teams.invite(owner, email="Newbie@X.test", role=Role.VIEWER)
    assert mail.outbox[0].to == ["newbie@x.test"] and invite.token in mail.outbox[0].body
    stranger = User.objects.create_user("stranger@x.test", "pw")
    with pytest.raises(teams.TeamError, match="is for newbie@x.test"):
        teams.accept_invite(invite.token, stranger)
    newbie = User.objects.create_user("newbie@x.test", "pw")
    assert teams.accept_invite(invite.token, newbie).role == Role.VIEWER
    with pytest.raises(teams.TeamError, match="has already been used"):
        teams.accept_invite(invite.token, newbie)


def test_a_link_invite_works_once_then_never_again(personas, client_for):
    client = client_for(personas.owner)
    client.post(f"/t/{personas.team.slug}/settings/invites/", {"email": "", "role": "member"})
    invite = Invite.objects.get(team=personas.team)
    page = client.get(f"/t/{personas.team.slug}/settings/").content.decode()
    assert f"/invites/{invite.token}/" in page
    first, second = (
        User.objects.create_user("one@x.test", "pw"),
        User.objects.create_user("two@x.test", "pw"),
    )
    response = client_for(first).post(f"/invites/{invite.token}/")
    assert response.url == f"/t/{personas.team.slug}/"
    response = client_for(second).post(f"/invites/{invite.token}/", follow=True)
    assert "has already been used" in response.content.decode()
    assert not personas.team.memberships.filter(user=second).exists()


def test_expired_and_revoked_invites_are_refused(personas):
    owner = personas.membership(personas.owner)
    expired = teams.invite(owner)
    Invite.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    revoked = teams.invite(owner)
    teams.revoke_invite(owner, revoked)
    user = User.objects.create_user("late@x.test", "pw")
    with pytest.raises(teams.TeamError, match="has expired"):
        teams.accept_invite(expired.token, user)
    with pytest.raises(teams.TeamError, match="has been revoked"):
        teams.accept_invite(revoked.token, user)


def test_an_unknown_invite_token_is_not_found(personas, client_for):
    assert client_for(personas.outsider).get("/invites/not-a-token/").status_code == 404


def test_a_viewer_is_not_offered_new_video_and_a_role_refusal_says_which_role(personas, client_for):
    from django.test import Client

    client = Client(raise_request_exception=False)
    client.force_login(personas.viewer)
    dashboard = client.get(f"/t/{personas.team.slug}/").content.decode()
    assert f"/t/{personas.team.slug}/jobs/new/" not in dashboard
    refused = client.get(f"/t/{personas.team.slug}/jobs/new/")
    assert refused.status_code == 403
    page = refused.content.decode()
    assert "This needs the member role or higher." in page and "<nav" in page  # our styled page
    member = client_for(personas.member).get(f"/t/{personas.team.slug}/").content.decode()
    assert f"/t/{personas.team.slug}/jobs/new/" in member


def test_leaving_a_team_asks_first(personas, client_for):
    client = client_for(personas.member)
    leave = f"/t/{personas.team.slug}/settings/leave/"
    page = client.get(f"/t/{personas.team.slug}/settings/").content.decode()
    assert "Yes, leave Team A" in page and 'name="confirm" value="yes"' in page
    unconfirmed = client.post(leave, follow=True).content.decode()
    assert "Confirm that you want to leave the team." in unconfirmed
    assert personas.team.memberships.filter(user=personas.member).exists()
    client.post(leave, {"confirm": "yes"})
    assert not personas.team.memberships.filter(user=personas.member).exists()
