"""Staff reconciliation: per provider and day, the credits we captured beside what the provider
reported, the jobs where they differ, and the CSV export."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from studio.billing import reconciliation
from studio.models import EntryKind, Job, LedgerEntry, User
from studio.providers import label_of
from studio.teams import create_team
from tests.factories import make_job

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)
PAGE = reverse("staff_reconciliation")
CSV = reverse("staff_reconciliation_csv")


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def finished(team, user, provider, price, reported=None, *, state="succeeded", when=None):
    """A job reserved, walked through the state machine (which captures or releases its credits
    in the ledger) and then given what the provider reported and when it finished."""
    job = make_job(team, user, state=state, price=price)
    Job.objects.filter(pk=job.pk).update(
        provider=provider, provider_credits_used=reported, finished_at=when or at(DAY)
    )
    job.refresh_from_db()
    return job


@pytest.fixture
def month(personas):
    """Two days of AKOOL, AI/ML API and local jobs, with every kind of difference on DAY."""
    team, user = personas.team, personas.member
    jobs = {
        "akool_equal": finished(team, user, "akool", 20, 20.0),
        "akool_more": finished(team, user, "akool", 25, 30.0),
        "akool_silent": finished(team, user, "akool", 20, None),
        "akool_refunded": finished(team, user, "akool", 10, 5.0, state="failed"),
        "akool_failed_free": finished(team, user, "akool", 10, None, state="failed"),
        "akool_expired_zero": finished(team, user, "akool", 10, 0.0, state="expired"),
        "akool_day_before": finished(
            team, user, "akool", 20, 20.0, when=at(DAY, 1) - timedelta(hours=2)
        ),
        "aiml_less": finished(team, user, "aimlapi", 30, 29.5),
        "local": finished(team, user, "local", 7),
        "local_failed": finished(team, user, "local", 3, state="failed"),
    }
    return jobs


def row(rows, provider, day=DAY):
    return next(r for r in rows if (r.provider, r.day) == (provider, day))


# --- The figures ----------------------------------------------------------------------------
def test_captures_come_from_the_ledger_one_per_delivered_job(month):
    captures = LedgerEntry.objects.filter(kind=EntryKind.CAPTURE, job=month["akool_more"])
    assert list(captures.values_list("amount", flat=True)) == [25]
    assert not LedgerEntry.objects.filter(kind=EntryKind.CAPTURE, job=month["akool_refunded"])


def test_a_day_shows_our_captures_beside_the_providers_figures(month):
    rows = reconciliation.daily(start=DAY - timedelta(days=1), end=DAY)

    akool = row(rows, "akool")
    assert akool.jobs_succeeded == 3
    assert akool.captured == 20 + 25 + 20
    assert akool.reported == 20.0 + 30.0 + 5.0 + 0.0  # the refunded job's charge counts too
    assert akool.jobs_reported == 4
    assert akool.difference == 55.0 - 65
    assert akool.jobs_differing == 3  # more, silent, refunded
    assert row(rows, "akool", DAY - timedelta(days=1)) == reconciliation.DayRow(
        "akool",
        label_of("akool"),
        DAY - timedelta(days=1),
        1,
        20,
        20.0,
        1,
        0.0,
        0,
    )
    aiml = row(rows, "aimlapi")
    assert (aiml.captured, aiml.reported, aiml.difference, aiml.jobs_differing) == (
        30,
        29.5,
        -0.5,
        1,
    )


def test_a_provider_that_never_reports_shows_not_reported_and_no_differences(month):
    local = row(reconciliation.daily(start=DAY, end=DAY), "local")

    assert (local.jobs_succeeded, local.captured) == (1, 7)
    assert local.reported is None and local.difference is None and not local.reports
    assert (local.jobs_reported, local.jobs_differing) == (0, 0)
    assert list(reconciliation.differing_jobs("local", DAY)) == []


def test_a_reporting_provider_with_no_report_on_a_day_shows_that_day_as_differing(personas, month):
    quiet = DAY + timedelta(days=3)
    job = finished(personas.team, personas.member, "akool", 20, None, when=at(quiet))

    day = row(reconciliation.daily("akool", start=quiet, end=quiet), "akool", quiet)

    assert (day.captured, day.reported, day.jobs_reported, day.difference) == (20, 0.0, 0, -20.0)
    assert day.jobs_differing == 1
    assert [j.job_id for j in reconciliation.differing_jobs("akool", quiet)] == [str(job.pk)]


def test_the_differing_jobs_are_listed_with_why(month):
    jobs = list(reconciliation.differing_jobs("akool", DAY))

    by_id = {j.job_id: j for j in jobs}
    assert set(by_id) == {
        str(month[k].pk) for k in ("akool_more", "akool_silent", "akool_refunded")
    }
    more = by_id[str(month["akool_more"].pk)]
    assert (more.captured, more.reported, more.difference, more.issue) == (
        25,
        30.0,
        5.0,
        "mismatch",
    )
    assert more.team == "Team A" and more.state == "succeeded" and more.day == DAY
    silent = by_id[str(month["akool_silent"].pk)]
    assert (silent.captured, silent.reported, silent.difference, silent.issue) == (
        20,
        None,
        -20.0,
        "unreported",
    )
    refunded = by_id[str(month["akool_refunded"].pk)]
    assert (refunded.captured, refunded.reported, refunded.difference, refunded.issue) == (
        0,
        5.0,
        5.0,
        "refunded",
    )
    assert refunded.state == "failed"


def test_every_providers_differences_when_no_provider_is_named(month):
    ids = {j.job_id for j in reconciliation.differing_jobs(None, DAY)}

    assert ids == {
        str(month[k].pk) for k in ("akool_more", "akool_silent", "akool_refunded", "aiml_less")
    }


def test_the_provider_filter_narrows_the_days(month):
    rows = reconciliation.daily("aimlapi", start=DAY - timedelta(days=5), end=DAY)

    assert [(r.provider, r.day) for r in rows] == [("aimlapi", DAY)]


def test_the_range_includes_both_ends_and_nothing_outside(personas):
    for offset in (-1, 0, 2, 3):
        when = at(DAY + timedelta(days=offset), 23)
        finished(personas.team, personas.member, "akool", 10 + offset, 10.0, when=when)

    rows = reconciliation.daily(start=DAY, end=DAY + timedelta(days=2))

    assert [(r.day, r.captured) for r in rows] == [(DAY + timedelta(days=2), 12), (DAY, 10)]


def test_a_day_with_only_failures_the_provider_did_not_charge_has_no_row(personas):
    finished(personas.team, personas.member, "akool", 20, 20.0)
    quiet = DAY + timedelta(days=1)
    finished(personas.team, personas.member, "akool", 20, None, state="failed", when=at(quiet))
    finished(personas.team, personas.member, "local", 20, None, state="canceled", when=at(quiet))

    assert [r.day for r in reconciliation.daily(start=DAY, end=quiet)] == [DAY]


def test_days_follow_the_server_time_zone(personas, settings):
    job = finished(personas.team, personas.member, "akool", 20, 21.0, when=at(DAY, 3))
    assert [r.day for r in reconciliation.daily(start=DAY - timedelta(1), end=DAY)] == [DAY]

    settings.TIME_ZONE = "America/New_York"  # 03:00 UTC is 22:00 the evening before there

    before = DAY - timedelta(days=1)
    assert [r.day for r in reconciliation.daily(start=before, end=DAY)] == [before]
    assert reconciliation.daily(start=DAY, end=DAY) == []
    assert [j.job_id for j in reconciliation.differing_jobs("akool", before)] == [str(job.pk)]


def test_the_default_range_is_the_last_30_days(personas):
    now = timezone.now()
    for days_ago, price in ((0, 1), (29, 2), (30, 4)):
        finished(personas.team, personas.member, "local", price, when=now - timedelta(days_ago))
    start, end = reconciliation.default_range()

    rows = reconciliation.daily(start=start, end=end)

    assert (end - start).days == 29 and end == timezone.localdate()
    assert sum(r.captured for r in rows) == 1 + 2


# --- The page -------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["anonymous", "owner", "member", "viewer", "outsider", "superuser"])
def test_everyone_but_staff_gets_404(personas, month, client, client_for, who):
    if who == "superuser":
        client = client_for(User.objects.create_user("su@x.test", "pw-su-1234", is_superuser=True))
    elif who != "anonymous":
        client = client_for(getattr(personas, who))
    query = {"provider": "akool", "day": DAY.isoformat()}
    for url in (PAGE, CSV):
        response = client.get(url, query)
        assert response.status_code == 404, url
        assert str(month["akool_more"].pk) not in response.content.decode()
        assert client.post(url).status_code == 404


def test_staff_may_only_read(staff_client):
    assert staff_client.get(PAGE).status_code == 200
    assert staff_client.post(PAGE).status_code == 405
    assert staff_client.post(CSV).status_code == 405


def day_row(html, provider, day=DAY) -> str:
    section = html.split(f'id="provider-{provider}"')[1].split("</section>")[0]
    return section.split(f'data-day="{day}"')[1].split("</tr>")[0]


def cell_texts(row_html) -> list[str]:
    """The text of each cell after the first (the day), tags removed."""
    return [re.sub(r"<[^>]+>", "", c.split(">", 1)[1]).strip() for c in row_html.split("<td")[2:]]


def test_the_page_shows_a_table_per_provider_with_units_and_not_reported(month, staff_client):
    query = {"start": (DAY - timedelta(days=1)).isoformat(), "end": DAY.isoformat()}
    html = staff_client.get(PAGE, query).content.decode()

    assert 'aria-current="page">Reconciliation</a>' in html
    assert "deduction_credit" in html and "credits_used" in html
    assert "our credits" in html and "provider's credits" in html and "UTC" in html
    assert cell_texts(day_row(html, "akool")) == ["3", "65", "55.0", "4", "-10.0", "3"]
    assert cell_texts(day_row(html, "aimlapi")) == ["1", "30", "29.5", "1", "-0.5", "1"]
    assert cell_texts(day_row(html, "local")) == ["1", "7", "not reported", "—", "—", "0"]
    assert f"?start={query['start']}&amp;end={DAY}&amp;provider=akool&amp;day={DAY}" in (
        day_row(html, "akool")
    )
    assert "Jobs that differ" not in html
    assert f'href="{CSV}?start={query["start"]}&amp;end={DAY}"' in html


def test_the_page_follows_the_provider_filter_and_keeps_it_in_the_export(month, staff_client):
    query = {"provider": "aimlapi", "start": str(DAY), "end": str(DAY)}
    html = staff_client.get(PAGE, query).content.decode()

    assert 'id="provider-aimlapi"' in html
    assert 'id="provider-akool"' not in html and 'id="provider-local"' not in html
    assert f'href="{CSV}?provider=aimlapi&amp;start={DAY}&amp;end={DAY}&amp;kind=days"' in html


def test_a_days_link_lists_its_differing_jobs_with_admin_links(month, staff_client):
    html = staff_client.get(PAGE, {"provider": "akool", "day": DAY.isoformat()}).content.decode()

    listed = html.split('id="differing-jobs"')[1].split("</section>")[0]
    for key in ("akool_more", "akool_silent", "akool_refunded"):
        job = month[key]
        assert reverse("admin:studio_job_change", args=[job.pk]) in listed
    for key in ("akool_equal", "akool_failed_free", "akool_expired_zero", "aiml_less", "local"):
        assert str(month[key].pk) not in listed
    assert "refunded to the team, but the provider reported a charge" in listed
    assert "delivered, but the provider reported nothing" in listed


def test_a_day_without_differences_says_so(month, staff_client):
    before = (DAY - timedelta(days=1)).isoformat()
    html = staff_client.get(PAGE, {"provider": "akool", "day": before}).content.decode()

    assert "No job differs on this day." in html


BAD_INPUTS = [
    ({"start": "2026-13-99"}, "From: Enter a date as YYYY-MM-DD"),
    ({"end": "2026-01-01\x00"}, "To: Enter a date as YYYY-MM-DD"),
    ({"day": "9" * 5000}, "Day: Enter a date as YYYY-MM-DD"),
    ({"start": "1" * 5000 + "-01-01"}, "From: Enter a date as YYYY-MM-DD"),
    ({"start": "1999-12-31"}, "From: the ledger starts after 2000-01-01."),
    ({"start": "2026-03-10", "end": "2026-03-01"}, "To: The end date is before the start date."),
    ({"start": "2024-01-01", "end": "2026-01-01"}, "To: Choose at most 366 days."),
    ({"provider": "nobody"}, "Provider: Choose a provider from the list."),
    ({"provider": "akool\x00"}, "Provider: Choose a provider from the list."),
]


@pytest.mark.parametrize(("query", "message"), BAD_INPUTS)
def test_bad_filters_get_a_clear_message_on_the_page_and_400_from_the_csv(
    month, staff_client, query, message
):
    page = staff_client.get(PAGE, query)
    assert page.status_code == 200
    html = page.content.decode()
    assert message in html and "From: From:" not in html
    assert 'id="provider-akool"' not in html and str(month["akool_more"].pk) not in html

    export = staff_client.get(CSV, query)
    assert export.status_code == 400
    assert message in export.content.decode()


def test_an_unknown_export_kind_is_refused(staff_client):
    response = staff_client.get(CSV, {"kind": "everything"})

    assert response.status_code == 400
    assert "Export: Export jobs or days." in response.content.decode()


# --- CSV ------------------------------------------------------------------------------------
def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_has_a_row_per_differing_job_in_the_range(month, staff_client):
    query = {"start": (DAY - timedelta(days=1)).isoformat(), "end": DAY.isoformat()}
    response = staff_client.get(CSV, query)
    rows = read_csv(response)

    assert rows[0] == reconciliation.JOB_CSV_HEADER
    assert (
        f'filename="reconciliation-jobs-{query["start"]}-{query["end"]}.csv"'
        in (response["Content-Disposition"])
    )
    by_job = {r[2]: r for r in rows[1:]}
    assert len(rows) == 1 + 4
    more = month["akool_more"]
    assert by_job[str(more.pk)] == [
        str(DAY),
        "akool",
        str(more.pk),
        "Team A",
        "succeeded",
        "25",
        "30.0",
        "5.0",
        "the figures differ",
    ]
    assert by_job[str(month["akool_silent"].pk)][6] == "not reported"
    assert by_job[str(month["aiml_less"].pk)][5:8] == ["30", "29.5", "-0.5"]


def test_the_csv_follows_the_provider_and_day_filters(month, staff_client):
    rows = read_csv(staff_client.get(CSV, {"provider": "aimlapi", "day": DAY.isoformat()}))

    assert [r[2] for r in rows[1:]] == [str(month["aiml_less"].pk)]
    rows = read_csv(staff_client.get(CSV, {"provider": "akool", "end": str(DAY - timedelta(2))}))
    assert rows == [reconciliation.JOB_CSV_HEADER]  # the 30 days up to two days before: none


def test_the_days_csv_has_a_row_per_provider_and_day(month, staff_client):
    query = {"start": (DAY - timedelta(days=1)).isoformat(), "end": DAY.isoformat(), "kind": "days"}
    rows = read_csv(staff_client.get(CSV, query))

    assert rows[0] == reconciliation.DAY_CSV_HEADER
    assert rows[1:] == [
        [str(DAY), "aimlapi", "1", "30", "29.5", "1", "-0.5", "1"],
        [str(DAY), "akool", "3", "65", "55.0", "4", "-10.0", "3"],
        [str(DAY - timedelta(days=1)), "akool", "1", "20", "20.0", "1", "0.0", "0"],
        [str(DAY), "local", "1", "7", "not reported", "0", "", "0"],
    ]


def test_a_team_name_cannot_become_a_spreadsheet_formula(personas, staff_client):
    team = create_team(personas.outsider, '=HYPERLINK("http://evil.test","x")')
    from studio.billing import ledger

    ledger.grant(team, 100, actor=None, reason="test")
    finished(team, personas.outsider, "akool", 20, 25.0)

    rows = read_csv(staff_client.get(CSV, {"day": DAY.isoformat()}))

    assert rows[1][3] == '\'=HYPERLINK("http://evil.test","x")'


# --- Queries --------------------------------------------------------------------------------
def make_jobs(personas, count, days):
    for n in range(count):
        when = at(DAY - timedelta(days=n % days), 10)
        provider = ("akool", "aimlapi", "local")[n // days % 3]
        reported = None if provider == "local" else float(n % 4 + 9)
        finished(personas.team, personas.member, provider, 10, reported, when=when)


def test_the_page_and_the_csv_take_as_many_queries_for_many_jobs_as_for_few(
    personas, staff_client, django_assert_max_num_queries
):
    query = {"start": str(DAY - timedelta(days=20)), "end": str(DAY), "day": str(DAY)}
    make_jobs(personas, 3, 1)

    def requests():
        staff_client.get(PAGE, query)
        read_csv(staff_client.get(CSV, query))
        read_csv(staff_client.get(CSV, query | {"kind": "days"}))

    with CaptureQueriesContext(connection) as few:
        requests()
    make_jobs(personas, 60, 12)

    with django_assert_max_num_queries(len(few)):
        requests()
    html = staff_client.get(PAGE, query).content.decode()
    assert html.count("<tr data-day=") == 3 * 12  # akool, aimlapi, local: 12 days each
