import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from studio.billing import budgets, ledger, ledger_csv, usage
from studio.jobs.states import transition
from studio.models import CreditAccount, JobState, LedgerEntry, Membership, Role, User
from studio.providers import PROVIDERS
from tests.factories import make_job

S = JobState
SVG = "{http://www.w3.org/2000/svg}"


def credits_url(team, **query):
    url = reverse("credits", args=[team.slug])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def entry_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-entry="(\d+)"', response.content.decode())]


def row_html(response, entry) -> str:
    found = re.search(rf'<tr data-entry="{entry.pk}".*?</tr>', response.content.decode(), re.S)
    assert found, f"no row for entry {entry.pk}"
    return found.group(0)


def figure(response, name) -> int:
    found = re.search(rf'data-figure="{name}"><strong>(-?\d+)</strong>', response.content.decode())
    assert found, f"no {name} figure"
    return int(found.group(1))


def ids(entries) -> set[int]:
    return set(entries.values_list("pk", flat=True))


def move(entries, when):
    """Date entries elsewhere in time: it moves no credits, so the ledger stays consistent."""
    entries.update(created_at=when)


@pytest.fixture
def mixed(personas):
    """Team A's ledger: the grant; member's delivered video (January 2024); owner's refunded
    video; owner's queued video, made with another provider."""
    team = personas.team
    delivered = make_job(team, personas.member, state="succeeded", price=10)
    move(LedgerEntry.objects.filter(job=delivered), timezone.make_aware(datetime(2024, 1, 10, 12)))
    refunded = make_job(team, personas.owner, state="failed", price=5)
    queued = make_job(team, personas.owner, state="queued", price=3)
    LedgerEntry.objects.filter(job=queued).update(provider="kling")
    return {"delivered": delivered, "refunded": refunded, "queued": queued}


# --- The page ---------------------------------------------------------------------------------
def test_the_figures_shown_are_the_teams_account(personas, client_for):
    make_job(personas.team, personas.member, state="succeeded", price=20)
    make_job(personas.team, personas.owner, state="queued", price=30)
    CreditAccount.objects.filter(team=personas.team).update(monthly_cap=500)
    account = ledger.account(personas.team)

    response = client_for(personas.viewer).get(credits_url(personas.team))

    assert response.status_code == 200
    assert figure(response, "balance") == account.balance == 980
    assert figure(response, "held") == account.held == 30
    assert figure(response, "available") == account.available == 950
    assert figure(response, "committed") == budgets.committed(personas.team) == 50
    assert figure(response, "cap") == 500
    assert "450 left" in response.content.decode()


def test_the_cap_is_not_shown_when_the_team_has_none(personas, client_for):
    response = client_for(personas.member).get(credits_url(personas.team))
    assert 'data-figure="cap"' not in response.content.decode()


def test_a_failed_jobs_refund_shows_with_its_reason_even_to_a_viewer(personas, client_for):
    job = make_job(personas.team, personas.member, state="running", price=20)
    assert transition(job, S.RUNNING, S.FAILED, error="The provider rejected the image")
    refund = LedgerEntry.objects.get(job=job, kind="release")

    response = client_for(personas.viewer).get(credits_url(personas.team))

    row = row_html(response, refund)
    assert "Failed: The provider rejected the image" in row
    assert "refunded" in row
    assert '"Available">+20<' in row
    assert reverse("job_detail", args=[personas.team.slug, job.pk]) in row
    assert "member@a.test" in row


def test_a_capture_shows_as_spent_from_the_balance(personas, client_for):
    job = make_job(personas.team, personas.member, state="succeeded", price=20)
    capture = LedgerEntry.objects.get(job=job, kind="capture")
    row = row_html(client_for(personas.member).get(credits_url(personas.team)), capture)
    assert '"Balance">-20<' in row and "spent" in row


def test_the_ledger_is_newest_first(personas, client_for, mixed):
    response = client_for(personas.owner).get(credits_url(personas.team))
    assert entry_ids(response) == list(
        LedgerEntry.objects.filter(team=personas.team).values_list("pk", flat=True)
    )


@pytest.mark.parametrize(
    "query, expected",
    [
        ("member", lambda p, m: LedgerEntry.objects.filter(job=m["delivered"])),
        ("provider=kling", lambda p, m: LedgerEntry.objects.filter(job=m["queued"])),
        (
            "kind=release",
            lambda p, m: LedgerEntry.objects.filter(job=m["refunded"], kind="release"),
        ),
        (
            "date_from=2024-01-01&date_to=2024-01-31",
            lambda p, m: LedgerEntry.objects.filter(job=m["delivered"]),
        ),
        ("date_to=2024-01-10", lambda p, m: LedgerEntry.objects.filter(job=m["delivered"])),
        (
            "date_from=2024-01-11",
            lambda p, m: LedgerEntry.objects.filter(team=p.team).exclude(job=m["delivered"]),
        ),
        (
            "kind=reserve&member=OWNER",
            lambda p, m: LedgerEntry.objects.filter(kind="reserve", member=p.owner),
        ),
    ],
)
def test_each_filter_narrows_the_ledger(personas, client_for, mixed, query, expected):
    query = query.replace("OWNER", str(personas.owner.pk))
    if query == "member":
        query = f"member={personas.member.pk}"
    everything = entry_ids(client_for(personas.owner).get(credits_url(personas.team)))

    response = client_for(personas.owner).get(credits_url(personas.team) + "?" + query)

    wanted = ids(expected(personas, mixed))
    assert set(entry_ids(response)) == wanted
    assert 0 < len(wanted) < len(everything)


def test_the_ledger_comes_25_a_page_and_the_pager_keeps_the_filters(personas, client_for):
    for n in range(30):
        ledger.grant(personas.team, 1, actor=personas.owner, reason=f"Top-up {n}")
    make_job(personas.team, personas.member, state="queued", price=1)  # not a grant
    grants = list(
        LedgerEntry.objects.filter(team=personas.team, kind="grant").values_list("pk", flat=True)
    )
    client = client_for(personas.member)

    first = client.get(credits_url(personas.team, kind="grant"))
    second = client.get(credits_url(personas.team, kind="grant", page=2))

    assert entry_ids(first) == grants[:25]
    assert entry_ids(second) == grants[25:] and len(grants[25:]) == 6
    assert 'href="?kind=grant&amp;page=2"' in first.content.decode()
    assert 'href="?kind=grant&amp;page=1"' in second.content.decode()
    assert "Page 2 of 2" in second.content.decode()


@pytest.mark.parametrize(
    "query, message",
    [
        ("date_from=2024-13-45", "From: Enter a date as YYYY-MM-DD"),
        ("date_to=yesterday", "To: Enter a date as YYYY-MM-DD"),
        ("date_from=2024-02-01&date_to=2024-01-01", "To: The end date is before the start date."),
    ],
)
def test_a_bad_date_is_a_clear_form_error(personas, client_for, query, message):
    client = client_for(personas.member)

    response = client.get(credits_url(personas.team) + "?" + query)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert entry_ids(response) == []
    csv_response = client.get(reverse("credits_csv", args=[personas.team.slug]) + "?" + query)
    assert csv_response.status_code == 400
    assert message in csv_response.content.decode()


def test_the_htmx_swap_gets_only_the_ledger_fragment(personas, client_for, mixed):
    response = client_for(personas.member).get(
        credits_url(personas.team, kind="reserve"), headers={"HX-Request": "true"}
    )

    html = response.content.decode().strip()
    assert html.startswith('<div id="ledger">') and html.endswith("</div>")
    assert "<html" not in html and "credits-figures" not in html and "<svg" not in html
    assert set(entry_ids(response)) == ids(LedgerEntry.objects.filter(kind="reserve"))
    assert "HX-Request" in response["Vary"]


def test_the_page_only_answers_reads(personas, client_for):
    assert client_for(personas.owner).post(credits_url(personas.team)).status_code == 405


def test_an_outsider_gets_404_on_the_page_and_the_csv(personas, client_for):
    client = client_for(personas.outsider)
    for url in (credits_url(personas.team), reverse("credits_csv", args=[personas.team.slug])):
        assert client.get(url).status_code == 404
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 404


# --- CSV --------------------------------------------------------------------------------------
def test_the_csv_has_a_header_and_every_filtered_row_as_an_attachment(personas, client_for, mixed):
    for n in range(30):  # more than a page: the CSV is not paginated
        ledger.grant(personas.team, 1, actor=personas.owner, reason=f"Top-up {n}")
    url = reverse("credits_csv", args=[personas.team.slug])

    response = client_for(personas.viewer).get(url + "?kind=grant")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == (
        f'attachment; filename="{personas.team.slug}-ledger.csv"'
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ledger_csv.CSV_HEADER
    assert len(rows) == 1 + 31
    assert {row[1] for row in rows[1:]} == {"grant"}
    assert rows[-1][2:5] == ["1000", "1000", "1000"] and rows[-1][8] == "Test budget"


def test_the_csv_row_of_a_refund_names_the_job_and_the_reason(personas, client_for, mixed):
    url = reverse("credits_csv", args=[personas.team.slug])
    response = client_for(personas.member).get(url + "?kind=release")
    body = b"".join(response.streaming_content).decode()
    (row,) = list(csv.DictReader(io.StringIO(body)))
    assert row["job"] == str(mixed["refunded"].pk)
    assert row["reason"] == "Failed"
    assert (row["balance change"], row["available change"]) == ("0", "5")


def test_a_reason_that_looks_like_a_formula_stays_text_in_the_csv(personas, client_for):
    ledger.grant(personas.team, 5, actor=personas.owner, reason='=HYPERLINK("x")')
    response = client_for(personas.owner).get(reverse("credits_csv", args=[personas.team.slug]))
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][8] == '\'=HYPERLINK("x")'


# --- Monthly usage ----------------------------------------------------------------------------
@pytest.fixture
def two_months(personas):
    """Last month: member spent 10 and holds 6. This month: owner spent 4 and holds 3 (with
    kling), and had 5 refunded. Long ago: 2 spent, outside the six months."""
    team, last_month = personas.team, budgets.period_start() - timedelta(days=2)
    for job in (
        make_job(team, personas.member, state="succeeded", price=10),
        make_job(team, personas.member, state="running", price=6),
    ):
        move(LedgerEntry.objects.filter(job=job), last_month)
    make_job(team, personas.owner, state="succeeded", price=4)
    held = make_job(team, personas.owner, state="queued", price=3)
    LedgerEntry.objects.filter(job=held).update(provider="kling")
    make_job(team, personas.owner, state="failed", price=5)
    old = make_job(team, personas.owner, state="succeeded", price=2)
    move(LedgerEntry.objects.filter(job=old), budgets.period_start() - timedelta(days=250))
    return last_month


def test_monthly_usage_by_member_spans_the_last_six_months(personas, two_months):
    found = usage.monthly_usage(personas.team, months=6, by="member")

    this, last = budgets.period_start().date(), timezone.localtime(two_months).date()
    assert len(found.months) == 6 and found.months[-1] == this
    assert found.months[-2] == last.replace(day=1)
    member, owner = personas.member.pk, personas.owner.pk
    assert found.spent(member)[found.months[-2]] == 10
    assert found.held(member)[found.months[-2]] == 6
    assert found.spent(owner)[this] == 4
    assert found.held(owner)[this] == 3
    assert sum(found.spent(owner).values()) == 4  # the refund and the old video are not in it
    assert found.month_totals() == [0, 0, 0, 0, 16, 7]


def test_monthly_usage_by_provider(personas, two_months):
    found = usage.monthly_usage(personas.team, months=2, by="provider")

    last, this = found.months
    assert found.spent("local") == {last: 10, this: 4}
    assert found.held("local") == {last: 6, this: 0}
    assert found.held("kling") == {last: 0, this: 3}
    labels = {s.key: s.label for s in found.series}
    assert labels == {"local": PROVIDERS["local"].label, "kling": "kling"}


def test_monthly_usage_is_by_member_or_provider_only(personas):
    with pytest.raises(ValueError):
        usage.monthly_usage(personas.team, by="colour")


def test_the_usage_chart_is_well_formed_svg_and_escapes_names(personas):
    odd = User.objects.create_user('a<&>"b@a.test', "pw-odd-123")
    Membership.objects.create(team=personas.team, user=odd, role=Role.MEMBER)
    make_job(personas.team, odd, state="succeeded", price=5)

    svg = usage.usage_svg(usage.monthly_usage(personas.team), title="Usage <by> member")

    assert "a<&>" not in svg
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    labelled_by = root.get("aria-labelledby").split()
    assert {el.get("id") for el in root.iter() if el.get("id")} >= set(labelled_by)
    assert root.find(f"{SVG}title").text == "Usage <by> member"
    assert 'a<&>"b@a.test' in "".join(root.itertext())
    assert len(root.findall(f".//{SVG}rect[{SVG}title]")) == 1  # one bar segment: 5 spent


def test_the_chart_of_an_idle_team_says_so(personas):
    svg = usage.usage_svg(usage.monthly_usage(personas.team), title="Usage")
    assert "No credits used" in "".join(ET.fromstring(svg).itertext())


def test_the_chart_folds_many_series_into_others():
    months = tuple(usage.month_starts(2))
    many = usage.Usage(
        "member",
        months,
        tuple(usage.Series(str(n), f"m{n}@x.test", (n, 1), (0, 0)) for n in range(12, 0, -1)),
    )
    text = "".join(ET.fromstring(usage.usage_svg(many, title="Many")).itertext())
    assert "5 others" in text and "m12@x.test" in text and "m1@x.test" not in text


def test_the_whole_page_shows_both_charts(personas, client_for, two_months):
    html = client_for(personas.viewer).get(credits_url(personas.team)).content.decode()
    assert 'aria-labelledby="usage-member-title usage-member-desc"' in html
    assert 'aria-labelledby="usage-provider-title usage-provider-desc"' in html


def test_a_date_beyond_the_calendar_is_a_clear_error_not_a_crash(personas, client_for):
    url = f"/t/{personas.team.slug}/credits/"
    response = client_for(personas.owner).get(url, {"date_to": "9999-12-31"})
    assert (
        response.status_code == 200
        and "choose a date before 2999-12-31" in response.content.decode()
    )
