"""A polled job status that has not changed is answered 304 from one query (studio.unchanged_polls),
and only to the session and member that the fragment was drawn for."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import (
    BooleanField,
    DateTimeField,
    FileField,
    FloatField,
    IntegerField,
    JSONField,
    UUIDField,
)
from django.test import Client
from django.urls import Resolver404, resolve
from django.utils import timezone

from studio.jobs.states import transition
from studio.models import Job, JobState, Membership, Role, Session
from studio.unchanged_polls import STATUS_FIELDS, status_route
from tests.factories import make_job

SVD = "stable-video-diffusion-img2vid-xt-1-1"


def running_job(personas, **fields):
    now = timezone.now()
    fields = {
        "running_at": now - timedelta(seconds=600),
        "eta_at": now + timedelta(seconds=615),  # mid-way between figures: a render is stable
        **fields,
    }
    return make_job(
        personas.team, personas.member, state="running", provider="stability", model=SVD, **fields
    )


def poll(client, job, tag=None):
    headers = {"HX-Request": "true"} | ({"If-None-Match": tag} if tag else {})
    return client.get(f"/t/{job.team.slug}/jobs/{job.pk}/status/", headers=headers)


def test_an_unchanged_job_is_answered_304_from_one_query_without_writing(
    personas, client_for, django_assert_num_queries
):
    job = running_job(personas)
    client = client_for(personas.member)
    first = poll(client, job)
    assert first.status_code == 200
    assert first["Cache-Control"] in ("private, no-cache", "no-cache, private")
    tag = first["ETag"]
    sessions = list(Session.objects.values_list("session_key", "session_data", "expire_date"))

    with django_assert_num_queries(1):
        again = poll(client, job, tag)

    assert again.status_code == 304
    assert again["ETag"] == tag and again.content == b""
    assert list(Session.objects.values_list("session_key", "session_data", "expire_date")) == (
        sessions
    )


def test_a_change_the_page_shows_is_drawn_again(personas, client_for):
    job = running_job(personas)
    client = client_for(personas.member)
    tag = poll(client, job)["ETag"]

    Job.objects.filter(pk=job.pk).update(progress=40, status_note="Rendering frames")

    changed = poll(client, job, tag)
    assert changed.status_code == 200
    assert changed["ETag"] != tag
    assert "Rendering frames" in changed.content.decode()
    assert poll(client, job, changed["ETag"]).status_code == 304


# Each shown field changed alone, from a value to another and between NULL and a value.
SHOWN_CHANGES = {
    "state": ("running", "submitting"),
    "progress": (0, 1),
    "error": ("", "x"),
    "status_note": ("a", "ab"),
    "eta_at": (None, timezone.now()),
    "running_at": (timezone.now(), timezone.now() + timedelta(microseconds=1)),
    "last_response": (None, {"status": "in-progress"}),
    "price_quoted": (20, 21),
    "provider": ("stability", "modelslab"),
    "deleted_at": (None, timezone.now()),
}


@pytest.mark.parametrize("field", sorted(SHOWN_CHANGES) + ["last_response:inner", "creator"])
def test_any_shown_field_changed_alone_is_drawn_again(personas, client_for, field):
    """The digest the database computes (Columns.digest_sql) covers every field of STATUS_FIELDS."""
    name = field.split(":")[0]
    before, after = SHOWN_CHANGES.get(name, (None, None))
    if field == "last_response:inner":  # a change deep inside the JSON
        before, after = (
            {"status": "in-progress", "n": [1, 2]},
            {"status": "in-progress", "n": [1, 3]},
        )
    if field == "creator":
        before, after = personas.member.pk, None
        name = "creator_id"
    job = running_job(personas)
    Job.objects.filter(pk=job.pk).update(**{name: before})
    client = client_for(personas.member)
    tag = poll(client, job)["ETag"]
    assert poll(client, job, tag).status_code == 304

    Job.objects.filter(pk=job.pk).update(**{name: after})

    assert poll(client, job, tag).status_code in (200, 286)


def test_a_job_read_without_its_digest_is_drawn_without_a_tag(personas, rf):
    from django.http import HttpResponse

    from studio.unchanged_polls import mark_cacheable

    job = running_job(personas)  # read by the ORM: no digest read in the same row
    request = rf.get("/")
    response = HttpResponse("fragment")

    mark_cacheable(response, request, job)

    assert not response.has_header("ETag")


def test_a_job_that_ended_stops_the_polling_whatever_the_tag(personas, client_for):
    job = running_job(personas)
    client = client_for(personas.member)
    tag = poll(client, job)["ETag"]

    assert transition(job, JobState.RUNNING, JobState.FAILED, error="The provider failed.")

    ended = poll(client, job, tag)
    assert ended.status_code == 286
    assert "The provider failed." in ended.content.decode()


def test_the_tag_is_no_use_to_an_outsider_another_member_or_a_signed_out_browser(
    personas, client_for
):
    job = running_job(personas)
    tag = poll(client_for(personas.member), job)["ETag"]

    outsider = Client()
    outsider.force_login(personas.outsider)
    assert poll(outsider, job, tag).status_code == 404

    owner = Client()
    owner.force_login(personas.owner)
    assert poll(owner, job, tag).status_code == 200  # drawn for the owner: their own tag

    member = Client()
    member.force_login(personas.member)  # another session of the same member
    assert poll(member, job, tag).status_code == 200
    member.logout()
    assert poll(member, job, tag).status_code == 302  # to the sign-in page


def test_a_member_removed_from_the_team_gets_404_with_their_old_tag(personas, client_for):
    job = running_job(personas)
    client = client_for(personas.member)
    tag = poll(client, job)["ETag"]

    Membership.objects.filter(team=personas.team, user=personas.member).delete()

    assert poll(client, job, tag).status_code == 404


def test_a_new_password_elsewhere_ends_the_session_rather_than_answer_304(personas, client_for):
    job = running_job(personas)
    client = client_for(personas.member)
    tag = poll(client, job)["ETag"]

    personas.member.set_password("a-new-password-9")
    personas.member.save()

    assert poll(client, job, tag).status_code == 302


def test_a_member_made_viewer_loses_the_cancel_button_at_the_next_poll(personas, client_for):
    job = running_job(personas)
    Job.objects.filter(pk=job.pk).update(state="queued", running_at=None)
    client = client_for(personas.member)
    first = poll(client, job)
    assert "Cancel job" in first.content.decode()

    Membership.objects.filter(team=personas.team, user=personas.member).update(role=Role.VIEWER)

    again = poll(client, job, first["ETag"])
    assert again.status_code == 200
    assert "Cancel job" not in again.content.decode()


# --- The tag covers all that the partial shows ---------------------------------------------------
def other_value(field, value, now):
    """A value of `field`'s type unlike `value`."""
    if isinstance(field, BooleanField):
        return not value
    if isinstance(field, DateTimeField):
        return now - timedelta(days=3)
    if isinstance(field, FloatField):
        return (value or 0) + 1.5
    if isinstance(field, IntegerField):
        return (value or 0) + 7
    if isinstance(field, JSONField):
        return {"changed": [1, 2]}
    if isinstance(field, UUIDField):
        return None if field.null else value
    if isinstance(field, FileField):
        return "changed/elsewhere.mp4"
    return "zz"[: field.max_length or 2]


def drawn(client, job) -> str:
    body = poll(client, job).content.decode()
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body)


@pytest.mark.parametrize("state", ["queued", "running"])
def test_the_active_partial_shows_nothing_of_a_job_beyond_its_status_fields(
    personas, client_for, state
):
    """A field the template starts to show must join STATUS_FIELDS, or a 304 would keep an old
    fragment on screen: change each other field, and the fragment must stay the same."""
    job = running_job(personas)
    if state == "queued":
        Job.objects.filter(pk=job.pk).update(state=state, running_at=None)
    client = client_for(personas.member)
    before = drawn(client, job)
    now = timezone.now()
    others = [
        field
        for field in Job._meta.concrete_fields
        if not field.is_relation and not field.primary_key and field.name not in STATUS_FIELDS
    ]
    assert len(others) > 20
    for field in others:
        value = getattr(Job.objects.get(pk=job.pk), field.attname)
        Job.objects.filter(pk=job.pk).update(**{field.attname: other_value(field, value, now)})
        assert drawn(client, job) == before, f"the partial shows {field.name}"
        Job.objects.filter(pk=job.pk).update(**{field.attname: value})


@pytest.mark.parametrize(
    "path",
    [
        "/t/acme/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status/",
        "/t/a-b_c9/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status/",
        "/t/acme/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status/x",
        "/t/acme/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status",
        "/t/acme/jobs/0B6F2F55-9D0C-4D2E-9A57-2D1C5D43B1A4/status/",
        "/t/acme/jobs/not-a-uuid/status/",
        "/t/acme/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/",
        "/x/t/acme/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status/",
        "/t/ac%20me/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status/",
        "/t/acme/jobs/0b6f2f55-9d0c-4d2e-9a57-2d1c5d43b1a4/status/\n",
    ],
)
def test_the_status_route_matches_exactly_what_the_urlconf_resolves_to_it(path):
    pattern, converters = status_route(settings.ROOT_URLCONF)
    matched = pattern.match(path)
    try:
        resolved = resolve(path)
    except Resolver404:
        resolved = None
    if resolved is None or resolved.url_name != "job_status":
        assert matched is None
    else:
        assert matched is not None
        found = {name: converters[name].to_python(matched[name]) for name in converters}
        assert found == resolved.kwargs
