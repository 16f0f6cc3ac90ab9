"""Credits, polished: running figures on every ledger row, one definition of this month's spending
and of a low balance, atomic and audited budget edits, bounded queries, a ledger that fits."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.db.models import F, QuerySet
from django.urls import reverse

from studio.billing import budgets, ledger, ledger_csv, usage
from studio.billing import staff as staff_billing
from studio.jobs.states import transition
from studio.models import (
    AuditEntry,
    CreditAccount,
    EntryKind,
    LedgerEntry,
    Membership,
)
from studio.models.billing import EFFECTS
from tests.browser import session_cookie
from tests.factories import make_job

PAGE = 25


def credits_url(team, **query):
    url = reverse("credits", args=[team.slug])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def shown_after(response) -> dict[int, tuple[int, int]]:
    """{entry id: (balance after, available after)} as the page shows them."""
    rows = re.findall(r'<tr data-entry="(\d+)".*?</tr>', response.content.decode(), re.S)
    html = response.content.decode()
    found = {}
    for pk in rows:
        row = re.search(rf'<tr data-entry="{pk}".*?</tr>', html, re.S).group(0)
        balance = re.search(r'data-after="balance">(-?\d+)<', row).group(1)
        available = re.search(r'data-after="available">(-?\d+)<', row).group(1)
        found[int(pk)] = (int(balance), int(available))
    return found


def expected_after(team) -> dict[int, tuple[int, int]]:
    """The figures after each entry, summed from the first entry up in Python: the oracle."""
    balance = available = 0
    after = {}
    for entry in LedgerEntry.objects.filter(team=team).order_by("created_at", "id"):
        d_balance, d_held = EFFECTS[EntryKind(entry.kind)]
        balance += d_balance * entry.amount
        available += (d_balance - d_held) * entry.amount
        after[entry.pk] = (balance, available)
    return after


def csv_body(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.fixture
def staff_user(staff):
    return staff


@pytest.fixture
def busy(personas):
    """Grants, delivered, refunded and running jobs by two members: 40-odd entries."""
    team = personas.team
    for n in range(6):
        make_job(team, personas.member, state="succeeded", price=7 + n)
        make_job(team, personas.owner, state="failed", price=3)
        make_job(team, personas.owner, state="running", price=2)
        ledger.grant(team, 10 + n, actor=personas.owner, reason=f"Top-up {n}")
    ledger.adjust(team, -4, actor=personas.owner, reason="Correction")
    return team


# --- Running figures -------------------------------------------------------------------------
def test_every_row_shows_the_teams_balance_and_available_after_it(personas, client_for, busy):
    expected = expected_after(busy)
    client = client_for(personas.viewer)
    shown = shown_after(client.get(credits_url(busy))) | shown_after(
        client.get(credits_url(busy, page=2))
    )
    assert len(shown) == min(len(expected), 2 * PAGE) and len(shown) > PAGE
    assert shown == {pk: expected[pk] for pk in shown}
    newest = max(shown)
    account = ledger.account(busy)
    assert shown[newest] == (account.balance, account.available)


def test_a_filtered_ledger_shows_the_teams_figures_for_the_rows_it_lists(
    personas, client_for, busy
):
    expected = expected_after(busy)
    response = client_for(personas.member).get(credits_url(busy, kind="grant"))
    shown = shown_after(response)
    grants = set(LedgerEntry.objects.filter(team=busy, kind="grant").values_list("pk", flat=True))
    assert set(shown) == grants
    assert shown == {pk: expected[pk] for pk in shown}
    assert "even when filters hide some" in response.content.decode()


def test_the_csv_has_the_running_figures_of_the_team_even_when_filtered(personas, client_for, busy):
    expected = expected_after(busy)
    url = reverse("credits_csv", args=[busy.slug])
    for query in ("", "?kind=capture", f"?member={personas.member.pk}"):
        rows = csv_body(client_for(personas.viewer).get(url + query))
        ids = LedgerEntry.objects.filter(team=busy)
        if query:
            ids = usage.filter_ledger(
                ids, **({"kind": "capture"} if "kind" in query else {"member": personas.member.pk})
            )
        wanted = [
            expected[pk] for pk in ids.order_by("-created_at", "-id").values_list("pk", flat=True)
        ]
        assert [(int(r["balance after"]), int(r["available after"])) for r in rows] == wanted


# --- Bounded queries -------------------------------------------------------------------------
def grow(team, owner, entries: int):
    LedgerEntry.objects.bulk_create(
        LedgerEntry(team=team, kind="grant", amount=1, actor=owner, reason=f"n{n}")
        for n in range(entries)
    )
    CreditAccount.objects.filter(team=team).update(balance=F("balance") + entries)


# Session read and save (3), user with membership, the banner (3), the filters' choices (2), the
# figures, both charts from one query, the ledger page, its count and its running figures.
PAGE_QUERIES = 15


@pytest.mark.parametrize("entries", [10, 120])
def test_the_credits_page_makes_the_same_few_queries_however_long_the_ledger(
    personas, client_for, django_assert_max_num_queries, entries
):
    for n in range(3):
        make_job(personas.team, personas.member, state="succeeded", price=1 + n)
    grow(personas.team, personas.owner, entries)
    client = client_for(personas.member)
    with django_assert_max_num_queries(PAGE_QUERIES):
        assert client.get(credits_url(personas.team)).status_code == 200
    with django_assert_max_num_queries(PAGE_QUERIES - 3):
        assert (
            client.get(credits_url(personas.team, page=2), HTTP_HX_REQUEST="true").status_code
            == 200
        )


# A second view of an unchanged ledger: its rows, charts and providers come from the cache
# under the ledger's entry count, so only the session, the member, the count, the filters'
# members, the figures and the header's teams are read.
WARM_PAGE_QUERIES = 8


def test_an_unchanged_ledger_is_not_read_again(personas, client_for, django_assert_max_num_queries):
    grow(personas.team, personas.owner, 60)
    client = client_for(personas.member)
    client.get(credits_url(personas.team))
    with django_assert_max_num_queries(WARM_PAGE_QUERIES) as captured:
        assert client.get(credits_url(personas.team)).status_code == 200
    ledger_reads = [q["sql"] for q in captured.captured_queries if "studio_ledgerentry" in q["sql"]]
    assert len(ledger_reads) == 1 and "COUNT(*)" in ledger_reads[0]


def test_the_credits_page_shows_every_new_entry_and_address_at_once(personas, client_for):
    """The cached rows and charts are named by the ledger's state and the members' addresses:
    a new entry, a settled job or a changed address shows on the very next view."""
    make_job(personas.team, personas.member, state="succeeded", price=7)
    client = client_for(personas.owner)
    first = client.get(credits_url(personas.team)).content.decode()
    assert "Download these 3 entries" in first
    ledger.grant(personas.team, 41, actor=personas.owner, reason="Second pilot")
    job = make_job(personas.team, personas.member, state="running", price=5)
    second = client.get(credits_url(personas.team))
    html = second.content.decode()
    assert "Download these 5 entries" in html and "Second pilot" in html
    assert shown_after(second) == {
        pk: figures
        for pk, figures in expected_after(personas.team).items()
        if pk in shown_after(second)
    }
    assert ": 7 spent" in html and ": 5 held" in html  # this month's bar, by member
    assert transition(job, "running", "succeeded")  # captures the hold
    html = client.get(credits_url(personas.team)).content.decode()
    assert ": 12 spent" in html and "held</title>" not in html
    personas.member.email = "renamed@example.com"
    personas.member.save()
    assert "renamed@example.com" in client.get(credits_url(personas.team)).content.decode()


@pytest.mark.parametrize("entries", [10, 3000])
def test_the_csv_makes_the_same_few_queries_however_long_the_ledger(
    personas, client_for, django_assert_max_num_queries, entries
):
    grow(personas.team, personas.owner, entries)
    client = client_for(personas.member)
    with django_assert_max_num_queries(8):  # 7 for the request and its session, 1 for every row
        rows = csv_body(client.get(reverse("credits_csv", args=[personas.team.slug])))
    assert len(rows) == entries + 1
    assert (rows[0]["balance after"], rows[-1]["balance after"]) == (str(1000 + entries), "1000")


def test_the_csv_reads_plain_rows_not_model_instances(personas, monkeypatch):
    grow(personas.team, personas.owner, 5)

    def refuse(*args, **kwargs):
        raise AssertionError("the CSV must not build a model instance per row")

    monkeypatch.setattr(LedgerEntry, "from_db", classmethod(refuse))
    monkeypatch.setattr(QuerySet, "iterator", refuse)
    rows = list(ledger_csv.csv_rows(personas.team, {}))
    assert len(rows) == 6


# --- One definition of this month's spending -------------------------------------------------
def test_a_job_reserved_on_the_last_day_and_delivered_on_the_first_counts_in_its_reserve_month(
    personas, client_for, staff_user
):
    team, month = personas.team, budgets.period_start()
    job = make_job(team, personas.member, state="succeeded", price=9)
    LedgerEntry.objects.filter(job=job, kind="reserve").update(
        created_at=month - timedelta(minutes=30)
    )
    LedgerEntry.objects.filter(job=job, kind="capture").update(
        created_at=month + timedelta(minutes=30)
    )
    make_job(team, personas.member, state="queued", price=4)  # this month, held
    last_month = month - timedelta(days=1)

    assert budgets.committed(team) == 4
    assert budgets.committed(team, now=last_month) == 9
    assert budgets.committed(team, personas.member, now=last_month) == 9
    assert budgets.committed_by_member(team) == {personas.member.pk: 4}
    found = usage.monthly_usage(team, months=2, by="member")
    assert found.spent(personas.member.pk) == {last_month.date().replace(day=1): 9, month.date(): 0}
    assert found.held(personas.member.pk) == {last_month.date().replace(day=1): 0, month.date(): 4}
    assert staff_billing.teams_with_figures().get(pk=team.pk).committed == 4
    page = client_for(personas.owner).get(credits_url(team)).content.decode()
    assert 'data-figure="committed"><strong>4</strong>' in page
    budget_page = client_for(personas.owner).get(reverse("budgets", args=[team.slug]))
    assert "<strong>4</strong> credits" in budget_page.content.decode()


def test_a_refund_takes_a_job_out_of_its_month_everywhere(personas):
    team = personas.team
    make_job(team, personas.member, state="failed", price=6)
    make_job(team, personas.member, state="succeeded", price=5)
    assert budgets.committed(team) == 5
    assert sum(usage.monthly_usage(team).month_totals()) == 5
    assert staff_billing.teams_with_figures().get(pk=team.pk).committed == 5


# --- One definition of a low balance ---------------------------------------------------------
@pytest.mark.parametrize("level_over_available, low", [(0, True), (-1, False)])
def test_low_balance_means_the_same_on_every_page_the_api_and_the_webhook(
    personas, client_for, staff_user, level_over_available, low
):
    team = personas.team
    account = ledger.account(team)
    CreditAccount.objects.filter(team=team).update(
        low_balance_level=account.available + level_over_available
    )
    account.refresh_from_db()
    assert budgets.account_is_low(account) is low
    page = client_for(personas.owner).get(credits_url(team)).content.decode()
    assert ('class="credits-low"' in page) is low
    assert staff_billing.teams_with_figures().get(pk=team.pk).is_low is low
    keys = [key for key, _ in budgets.warnings_due(team, None, account)]
    assert (budgets.LOW_BALANCE in keys) is low  # the banner, the e-mail and `credits.low`


def test_the_api_says_whether_the_balance_is_low(personas, monkeypatch):
    from studio.api import credits as api_credits

    calls = []
    real = budgets.account_is_low

    def spy(account):
        calls.append(account.team_id)
        return real(account)

    monkeypatch.setattr(budgets, "account_is_low", spy)
    CreditAccount.objects.filter(team=personas.team).update(low_balance_level=10**6)

    class Caller:
        team = personas.team
        membership = Membership.objects.get(team=personas.team, user=personas.owner)

    class Request:
        caller = Caller()

    status = api_credits.credits(Request())
    assert status.value["low"] is True and calls == [personas.team.pk]


# --- Budgets: atomic and audited --------------------------------------------------------------
def budget_post(personas, **fields):
    member = personas.membership(personas.member)
    data = {"monthly_cap": "300", "low_balance_level": "20", f"limit-{member.pk}": "40"}
    data.update(fields)
    return data


def test_a_budget_edit_is_audited_with_before_and_after(personas, client_for):
    url = reverse("budgets", args=[personas.team.slug])
    response = client_for(personas.owner).post(url, budget_post(personas))
    assert response.status_code == 302
    (audit,) = AuditEntry.objects.filter(action="budgets.edit")
    assert audit.actor == personas.owner and audit.target == str(personas.team)
    assert audit.before == {
        "monthly_cap": None,
        "low_balance_level": 50,
        "limit of member@a.test": None,
    }
    assert audit.after == {
        "monthly_cap": 300,
        "low_balance_level": 20,
        "limit of member@a.test": 40,
    }
    client_for(personas.owner).post(url, budget_post(personas))  # no change: nothing to record
    assert AuditEntry.objects.filter(action="budgets.edit").count() == 1


def test_a_budget_edit_that_fails_part_way_changes_nothing(personas, client_for, monkeypatch):
    real_update = QuerySet.update

    def failing_update(self, **kwargs):
        if self.model is Membership:
            raise DatabaseError("the disk is full")
        return real_update(self, **kwargs)

    monkeypatch.setattr(QuerySet, "update", failing_update)
    url = reverse("budgets", args=[personas.team.slug])
    with pytest.raises(DatabaseError):
        client_for(personas.owner).post(url, budget_post(personas))
    account = CreditAccount.objects.get(team=personas.team)
    assert (account.monthly_cap, account.low_balance_level) == (None, 50)
    assert not AuditEntry.objects.exists()


def test_a_refused_budget_value_changes_nothing(personas, client_for):
    url = reverse("budgets", args=[personas.team.slug])
    member = personas.membership(personas.member)
    response = client_for(personas.owner).post(
        url, budget_post(personas, **{f"limit-{member.pk}": "lots"})
    )
    assert response.status_code == 200 and "must be a whole number" in response.content.decode()
    account = CreditAccount.objects.get(team=personas.team)
    assert (account.monthly_cap, account.low_balance_level) == (None, 50)
    assert not AuditEntry.objects.exists()


# --- The page says how to get more ----------------------------------------------------------
def test_the_page_says_who_grants_credits(personas, client_for, staff_user):
    team = personas.team
    owner = client_for(personas.owner).get(credits_url(team)).content.decode()
    member = client_for(personas.member).get(credits_url(team)).content.decode()
    grant_url = reverse("staff_grant", args=[team.pk])
    assert "Getting more credits" in owner and "ask Studio staff for a grant" in owner
    assert "Ask an owner" in member and grant_url not in member
    Membership.objects.create(team=team, user=staff_user, role="viewer")
    assert grant_url in client_for(staff_user).get(credits_url(team)).content.decode()


# --- The ledger fits a 1280 px screen --------------------------------------------------------
# Data the live server's thread can see; serialized rollback brings back what the flush empties.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_ledger_fits_a_1280_pixel_screen(live_server, browser, personas):
    team = personas.team
    long_name = "a-very-long-address-of-a-member-" + "x" * 40 + "@example-company.test"
    personas.member.email = long_name
    personas.member.save()
    for n in range(4):
        make_job(team, personas.member, state="failed", price=2)
        ledger.grant(team, 5, actor=personas.owner, reason="Pilot budget " + "word " * 30 + str(n))
    LedgerEntry.objects.filter(team=team, kind="release").update(
        reason="Failed: " + "the-provider-said-no-" * 8
    )
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies([session_cookie(live_server, personas.owner)])
    page = context.new_page()
    page.goto(f"{live_server.url}{credits_url(team)}")
    assert page.locator("table.credits-ledger tbody tr").count() == 13
    widths = page.evaluate(
        """() => {
            const box = document.querySelector('.credits-scroll');
            return [box.scrollWidth, box.clientWidth,
                    document.documentElement.scrollWidth, window.innerWidth];
        }"""
    )
    context.close()
    scroll_width, client_width, page_width, window_width = widths
    assert scroll_width <= client_width, widths
    assert page_width <= window_width, widths
