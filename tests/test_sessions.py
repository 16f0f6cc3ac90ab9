"""Sessions kept with their user's id (studio.models.Session): a team page reads the session, the
user, the membership and the job in one statement, and the session's own data stays the truth."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.sessions.models import Session as OldSession
from django.utils import timezone

from studio.models import Session
from studio.sessions import SessionStore
from tests.factories import make_job

HTMX = {"HTTP_HX_REQUEST": "true"}


def session_of(client) -> Session:
    return Session.objects.get(session_key=client.session.session_key)


@pytest.mark.django_db
def test_signing_in_writes_the_users_id_beside_the_session(personas, client_for):
    client = client_for(personas.member)
    assert session_of(client).user_id == personas.member.pk
    client.logout()
    assert not Session.objects.filter(user_id=personas.member.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("column", ["missing", "another user's"])
def test_a_row_whose_user_column_disagrees_is_read_from_its_data(personas, client_for, column):
    # A session written before the column, or a column that is wrong: the signed data decides.
    job = make_job(personas.team, personas.member, state="running")
    client = client_for(personas.member)
    wrong = None if column == "missing" else personas.outsider.pk
    Session.objects.filter(pk=client.session.session_key).update(user_id=wrong)

    assert client.get(f"/t/{personas.team.slug}/jobs/{job.pk}/status/", **HTMX).status_code == 200
    assert client.get(f"/t/{personas.team.slug}/").status_code == 200
    assert client.get(f"/t/{personas.outsider_team.slug}/").status_code == 404


@pytest.mark.django_db
def test_an_expired_session_is_sent_to_sign_in(personas, client_for):
    job = make_job(personas.team, personas.member, state="running")
    client = client_for(personas.member)
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))

    answer = client.get(f"/t/{personas.team.slug}/jobs/{job.pk}/status/", **HTMX)
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


@pytest.mark.django_db
def test_a_changed_password_ends_other_sessions(personas, client_for):
    client = client_for(personas.member)
    personas.member.set_password("a-new-password-9")
    personas.member.save()

    answer = client.get(f"/t/{personas.team.slug}/")
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


@pytest.mark.django_db
def test_the_migration_keeps_everyone_signed_in(personas):
    copy_sessions = importlib.import_module("studio.migrations.0013_sessions_with_user")
    encode = SessionStore().encode  # as Django's own store signed them
    later, earlier = timezone.now() + timedelta(days=1), timezone.now() - timedelta(days=1)
    OldSession.objects.create(
        session_key="signed-in", expire_date=later,
        session_data=encode({"_auth_user_id": str(personas.member.pk)}),
    )  # fmt: skip
    OldSession.objects.create(session_key="anonymous", expire_date=later, session_data=encode({}))
    OldSession.objects.create(session_key="expired", expire_date=earlier, session_data=encode({}))

    copy_sessions.copy_sessions(apps, None)

    copied = {s.session_key: s.user_id for s in Session.objects.all()}
    assert copied == {"signed-in": personas.member.pk, "anonymous": None}
    assert not OldSession.objects.exists()  # nothing is left to read in Django's table

    copy_sessions.copy_sessions_back(apps, None)  # and undone, nobody is signed out either
    assert set(OldSession.objects.values_list("session_key", flat=True)) == set(copied)
