"""A team page reads the user with the membership in one statement (studio/access.py), and Django's
own checks of the session still decide who is signed in: an inactive user, or a session made
before the password changed, is sent to log in; someone else's team is a 404."""

import pytest

from studio.billing import ledger
from tests.factories import make_job


@pytest.mark.django_db
def test_a_session_from_before_a_password_change_is_signed_out(personas, client_for):
    client = client_for(personas.member)
    path = f"/t/{personas.team.slug}/"
    assert client.get(path).status_code == 200
    personas.member.set_password("a-new-password-456")
    personas.member.save()
    answer = client.get(path)
    assert answer.status_code == 302 and answer.url.startswith("/accounts/login/")


@pytest.mark.django_db
def test_an_inactive_user_is_sent_to_log_in(personas, client_for):
    job = make_job(personas.team, personas.member, state="running")
    client = client_for(personas.member)
    personas.member.is_active = False
    personas.member.save()
    answer = client.get(f"/t/{personas.team.slug}/jobs/{job.pk}/status/")
    assert answer.status_code == 302 and answer.url.startswith("/accounts/login/")


@pytest.mark.django_db
def test_a_job_of_another_team_is_not_found_through_ones_own_team(personas, client_for):
    ledger.grant(personas.outsider_team, 10, actor=None, reason="Test budget")
    theirs = make_job(personas.outsider_team, personas.outsider)
    client = client_for(personas.member)
    assert client.get(f"/t/{personas.team.slug}/jobs/{theirs.pk}/status/").status_code == 404
    assert client.get(f"/t/{personas.outsider_team.slug}/jobs/{theirs.pk}/").status_code == 404
