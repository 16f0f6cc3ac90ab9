"""What the workspace pages cost in SQL (issue 9): the polled status partial reads four rows and
writes nothing; the dashboard, gallery and credits pages cost the same number of queries whatever
the number of the team's jobs. (bench/pages.py measures their speed at 10,000 jobs.)"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studio.billing import ledger
from studio.models import Job
from tests.factories import make_job

HTMX = {"HTTP_HX_REQUEST": "true"}
STATUS_QUERIES = 1  # the session, user, membership, team and job in one statement


def finished(team, creator, count: int) -> None:
    for n in range(count):
        make_job(
            team,
            creator,
            state="succeeded",
            video=f"videos/{n}.mp4",
            poster=f"posters/{n}.jpg",
            params={"duration": 1, "motion": "zoom_in", "resolution": "480p", "fps": 12},
        )


def queries(client, path: str, **headers) -> list[str]:
    client.get(path, **headers)  # warm: the session's current team, cached medians
    with CaptureQueriesContext(connection) as captured:
        answer = client.get(path, **headers)
        if answer.streaming:
            b"".join(answer.streaming_content)
    assert answer.status_code in (200, 286), (path, answer.status_code)
    return [query["sql"] for query in captured.captured_queries]


def writes(sql: list[str]) -> list[str]:
    # EXECUTE studio_member…: team_view's SELECT, prepared once per connection (studio.access).
    reads = ("SELECT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK", "EXECUTE STUDIO_MEMBER")
    return [query for query in sql if not query.lstrip().upper().startswith(reads)]


@pytest.mark.django_db
@pytest.mark.parametrize("state", ["queued", "running"])
def test_the_polled_status_partial_reads_four_rows_and_writes_nothing(
    personas, client_for, django_assert_max_num_queries, state
):
    job = make_job(personas.team, personas.member, state=state)
    client = client_for(personas.member)
    path = f"/t/{personas.team.slug}/jobs/{job.pk}/status/"
    client.get(path, **HTMX)  # the first visit may record the current team in the session
    with django_assert_max_num_queries(STATUS_QUERIES):
        answer = client.get(path, **HTMX)
    assert answer.status_code == 200 and b"job-status" in answer.content
    assert not writes(queries(client, path, **HTMX))


@pytest.mark.django_db
def test_the_session_is_written_only_when_the_current_team_changes(personas, client_for):
    job = make_job(personas.team, personas.owner, state="running")
    client = client_for(personas.owner)
    status = f"/t/{personas.team.slug}/jobs/{job.pk}/status/"
    other = f"/t/{personas.outsider_team.slug}/"
    personas.outsider_team.memberships.create(user=personas.owner, role="member")
    queries(client, status, **HTMX)
    assert not writes(queries(client, status, **HTMX))
    client.get(other)  # another team: the session now names it
    with CaptureQueriesContext(connection) as captured:
        client.get(status, **HTMX)
    assert any("studio_session" in sql for sql in writes([q["sql"] for q in captured]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "page", ["", "gallery/", "gallery/?page=2", "gallery/?page=300", "credits/", "jobs/{job}/"]
)
def test_pages_cost_the_same_queries_at_few_and_many_jobs(personas, client_for, page):
    team, member = personas.team, personas.member
    finished(team, member, 2)
    client = client_for(member)
    path = f"/t/{team.slug}/" + page.format(job=Job.objects.filter(team=team).first().pk)
    few = queries(client, path)
    finished(team, personas.owner, 30)  # more than two pages, by another member too
    many = queries(client, path)
    assert len(many) == len(few), "\n".join(many)
    assert not writes(many)


@pytest.mark.django_db
def test_a_gallery_page_shows_its_own_jobs_newest_first(personas, client_for):
    finished(personas.team, personas.member, 14)  # 12 a page
    ids = list(Job.objects.filter(team=personas.team).values_list("pk", flat=True))
    client = client_for(personas.member)
    first = client.get(f"/t/{personas.team.slug}/gallery/").content.decode()
    second = client.get(f"/t/{personas.team.slug}/gallery/?page=2").content.decode()
    assert all(str(pk) in first for pk in ids[:12]) and str(ids[12]) not in first
    assert all(str(pk) in second for pk in ids[12:]) and str(ids[0]) not in second


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # to close the connection
def test_the_team_statement_is_planned_once_per_connection(personas, client_for):
    job = make_job(personas.team, personas.member, state="running")
    ledger.grant(personas.outsider_team, 10, actor=personas.outsider, reason="Test")
    outsider_job = make_job(personas.outsider_team, personas.outsider, state="running")
    client = client_for(personas.member)
    path = f"/t/{personas.team.slug}/jobs/{job.pk}/status/"

    member_reads = [q for q in queries(client, path, **HTMX) if "studio_member" in q]
    connection.close()  # a new connection: prepared again on first use

    assert member_reads and all(q.startswith("EXECUTE studio_member_job(") for q in member_reads)
    assert client.get(path, **HTMX).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        assert {"studio_member_job"} <= {name for (name,) in cursor.fetchall()}
    # The prepared statement keeps the wall: another team's job is not found through it.
    other = f"/t/{personas.team.slug}/jobs/{outsider_job.pk}/status/"
    assert client.get(other, **HTMX).status_code == 404
