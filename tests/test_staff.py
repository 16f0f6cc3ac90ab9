"""Staff pages: teams' credits, grants and adjustments, the price book, the audit log, the admin."""

import re
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from studio import teams
from studio.billing import budgets, ledger, prices
from studio.billing.staff import PriceBookChanged, edit_prices
from studio.models import (
    AuditEntry,
    BudgetWarning,
    CreditAccount,
    LedgerEntry,
    PriceBookVersion,
    PriceRule,
    User,
)
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def staff_urls(team):
    return [
        reverse("staff_overview"),
        reverse("staff_grant", args=[team.pk]),
        reverse("staff_prices"),
        reverse("staff_audit"),
    ]


def grant_url(team):
    return reverse("staff_grant", args=[team.pk])


def available(team):
    return ledger.account(team).available


def errors_of(response):
    return [str(m) for m in response.context["messages"] if m.level_tag == "error"]


def row_of(html, marker):
    """The table row (<tr>…</tr>) that contains `marker`."""
    return next(row for row in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S) if marker in row)


def price_rule(provider, model):
    return PriceBookVersion.objects.latest().rules.get(provider=provider, model=model)


def edit_price(client, rule, **fields):
    data = {
        "version": rule.version_id,
        "rule": rule.pk,
        "per_video": rule.per_video,
        "per_second": rule.per_second,
        "note": "Test change",
        **fields,
    }
    return client.post(reverse("staff_prices"), data, follow=True)


# --- Who may see them -----------------------------------------------------------------------
@pytest.mark.parametrize("who", ["anonymous", "owner", "member", "viewer", "outsider"])
def test_everyone_but_staff_gets_404_on_every_staff_page(personas, client, client_for, who):
    if who != "anonymous":
        client = client_for(getattr(personas, who))
    data = {"amount": "10", "reason": "x", "note": "x", "per_video": "0", "per_second": "0"}
    for url in staff_urls(personas.team):
        assert client.get(url).status_code == 404, f"GET {url}"
        assert client.post(url, data).status_code == 404, f"POST {url}"
    assert available(personas.team) == 1000
    assert not AuditEntry.objects.exists()


def test_an_owner_of_a_team_cannot_grant_it_credits(personas, client_for):
    response = client_for(personas.owner).post(
        grant_url(personas.team), {"amount": "500", "reason": "Free money"}
    )
    assert response.status_code == 404
    assert available(personas.team) == 1000


def test_a_superuser_without_staff_status_gets_404_too(personas, client_for):
    """The pages follow is_staff, like the admin."""
    user = User.objects.create_user("super@studio.test", "pw-super-123", is_superuser=True)
    assert client_for(user).get(reverse("staff_overview")).status_code == 404


def test_staff_reach_every_page_and_posts_only_where_they_change_something(personas, staff_client):
    for url in staff_urls(personas.team):
        method = staff_client.post if "credits" in url else staff_client.get
        assert method(url).status_code in (200, 302), url
    assert staff_client.get(grant_url(personas.team)).status_code == 405
    assert staff_client.post(reverse("staff_overview")).status_code == 405
    assert staff_client.post(reverse("staff_audit")).status_code == 405


# --- The overview ---------------------------------------------------------------------------
def test_staff_see_every_team_with_its_figures_and_a_low_balance_flag(personas, staff_client):
    make_job(personas.team, personas.member, price=30)  # held, and committed this month
    make_job(personas.team, personas.member, price=7, state="failed")  # released: not committed
    html = staff_client.get(reverse("staff_overview")).content.decode()

    team_a = row_of(html, "Team A")
    cells = re.findall(r'<td class="num">\s*(\d+)', team_a)
    assert cells == ["3", "1000", "30", "970", "30"]  # members, balance, held, available, month
    assert "low balance" not in team_a
    assert "low balance" in row_of(html, "Team B")  # 0 available, at or below the level of 50
    assert f'action="{grant_url(personas.team)}"' in team_a


def test_low_balance_teams_come_first(personas, staff_client):
    CreditAccount.objects.filter(team=personas.team).update(low_balance_level=1000)
    html = staff_client.get(reverse("staff_overview")).content.decode()
    names = re.findall(r"<tr( class=\"low\")?>\s*<td>([^<]+)", html)
    flags = [bool(low) for low, _ in names]
    assert flags == sorted(flags, reverse=True)
    assert {"Team A", "Team B"} <= {name for low, name in names if low}


def test_the_committed_figures_match_the_budget_code(personas, staff_client):
    make_job(personas.team, personas.member, price=12)
    make_job(personas.team, personas.owner, price=5, state="succeeded")
    make_job(personas.team, personas.owner, price=9, state="canceled")
    page = staff_client.get(reverse("staff_overview")).context["page"]
    for team in page:
        assert team.committed == budgets.committed(team), team.name
        assert team.available == ledger.account(team).available, team.name


def test_the_overview_can_be_sorted_and_searched(personas, staff_client):
    for sort in ("name", "available", "committed", "members", "low", "nonsense"):
        assert staff_client.get(reverse("staff_overview"), {"sort": sort}).status_code == 200
    page = staff_client.get(reverse("staff_overview"), {"q": "team b"}).context["page"]
    assert [team.name for team in page] == ["Team B"]
    html = staff_client.get(reverse("staff_overview"), {"q": "no such team"}).content.decode()
    assert "No team matches." in html


def test_the_search_answers_htmx_with_only_the_table(personas, staff_client):
    response = staff_client.get(
        reverse("staff_overview"), {"q": "Team A"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="teams">')
    assert "Team A" in html and "<html" not in html


def test_the_overview_takes_as_many_queries_for_many_teams_as_for_few(
    personas, staff, staff_client, django_assert_max_num_queries
):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(reverse("staff_overview")).status_code == 200
        return len(captured)

    few = queries()
    for n in range(15):
        team = teams.create_team(staff, f"Extra {n}")
        ledger.grant(team, 10 * n + 1, actor=None, reason="Test")
        make_job(team, staff, price=1)
    with django_assert_max_num_queries(few):
        staff_client.get(reverse("staff_overview"))
    assert queries() == few


# --- Grants and adjustments -----------------------------------------------------------------
def test_a_grant_with_a_reason_adds_credits_and_an_audit_row_with_before_and_after(
    personas, staff, staff_client
):
    response = staff_client.post(
        grant_url(personas.team), {"amount": "250", "reason": "Goodwill"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("staff_overview")
    assert available(personas.team) == 1250
    entry = LedgerEntry.objects.filter(team=personas.team).first()
    assert (entry.kind, entry.amount, entry.actor, entry.reason) == (
        "grant",
        250,
        staff,
        "Goodwill",
    )
    audit = AuditEntry.objects.get()
    assert (audit.actor, audit.action, audit.target, audit.reason) == (
        staff,
        "credits.grant",
        "Team A",
        "Goodwill",
    )
    assert audit.before == {"balance": 1000, "held": 0, "available": 1000}
    assert audit.after == {"balance": 1250, "held": 0, "available": 1250}
    assert "1250 available now" in response.content.decode()


def test_a_negative_amount_adjusts_down_and_is_audited(personas, staff_client):
    staff_client.post(grant_url(personas.team), {"amount": "-300", "reason": "Refunded twice"})
    assert available(personas.team) == 700
    audit = AuditEntry.objects.get()
    assert audit.action == "credits.adjustment"
    assert (audit.before["balance"], audit.after["balance"]) == (1000, 700)


def test_a_grant_keeps_the_overview_search_and_sort(personas, staff_client):
    response = staff_client.post(
        grant_url(personas.team), {"amount": "5", "reason": "x", "q": "Team", "sort": "name"}
    )
    assert response.url == reverse("staff_overview") + "?q=Team&sort=name"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"amount": "100", "reason": ""}, "Reason"),
        ({"amount": "100", "reason": "   "}, "Reason"),
        ({"amount": "100"}, "Reason"),
        ({"amount": "0", "reason": "Nothing"}, "Amount"),
        ({"amount": "ten", "reason": "Typo"}, "Amount"),
        ({"amount": "1.5", "reason": "Half"}, "Amount"),
        ({"amount": "", "reason": "Empty"}, "Amount"),
        ({"amount": "9" * 30, "reason": "Huge"}, "Amount"),
    ],
)
def test_a_grant_without_a_reason_or_a_usable_amount_is_refused_and_moves_nothing(
    personas, staff_client, data, field
):
    response = staff_client.post(grant_url(personas.team), data, follow=True)
    errors = errors_of(response)
    assert errors and errors[0].startswith(f"{field}: "), errors
    assert available(personas.team) == 1000
    assert LedgerEntry.objects.filter(team=personas.team).count() == 1  # the fixture's grant
    assert not AuditEntry.objects.exists()


def test_an_adjustment_below_available_is_refused(personas, staff_client):
    make_job(personas.team, personas.member, price=100)  # 900 available of a 1000 balance
    response = staff_client.post(
        grant_url(personas.team), {"amount": "-950", "reason": "Too much"}, follow=True
    )
    [error] = errors_of(response)
    assert "Team A" in error and "only 900 are available" in error
    assert (ledger.account(personas.team).balance, available(personas.team)) == (1000, 900)
    assert not AuditEntry.objects.exists()


def test_a_grant_to_a_team_that_does_not_exist_is_404(personas, staff_client):
    url = reverse("staff_grant", args=[999999])
    assert staff_client.post(url, {"amount": "5", "reason": "x"}).status_code == 404


# --- The price book -------------------------------------------------------------------------
def test_editing_a_price_makes_a_new_version_and_later_quotes_use_it(personas, staff, staff_client):
    old = PriceBookVersion.objects.latest()
    before = prices.quote("local", "camera-motion-v1", {"duration": 5})
    assert before.amount == 5
    rule = price_rule("local", "camera-motion-v1")

    response = edit_price(staff_client, rule, per_second="3", note="Our GPU costs went up")

    new = PriceBookVersion.objects.latest()
    assert new.pk != old.pk
    assert (new.created_by, new.note) == (staff, "Our GPU costs went up")
    assert new.rules.count() == old.rules.count()
    rule.refresh_from_db()
    assert (rule.version_id, rule.per_second) == (old.pk, 1)  # the old version is untouched
    assert prices.quote("local", "camera-motion-v1", {"duration": 5}).amount == 15
    assert prices.quote("local", "camera-motion-v1", {"duration": 5}, version=old).amount == 5
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.actor, audit.reason) == (
        "prices.new_version",
        staff,
        "Our GPU costs went up",
    )
    assert list(audit.before.values()) == [{"per_second": 1}]
    assert list(audit.after.values()) == [{"per_second": 3}]
    html = response.content.decode()
    assert f"Price book v{new.pk}" in html and f"v{old.pk}" in html


def test_a_job_quoted_before_a_price_change_keeps_its_version_and_price(personas, staff_client):
    old = PriceBookVersion.objects.latest()
    job = make_job(personas.team, personas.member, price=5, price_version=old)
    edit_price(staff_client, price_rule("local", "camera-motion-v1"), per_second="4")
    job.refresh_from_db()
    assert (job.price_version_id, job.price_quoted) == (old.pk, 5)
    assert (
        prices.quote(job.provider, job.model, {"duration": 5}, version=job.price_version).amount
        == 5
    )
    assert ledger.account(personas.team).held == 5


def test_a_price_edit_that_changes_nothing_makes_no_version(staff_client):
    count = PriceBookVersion.objects.count()
    response = edit_price(staff_client, price_rule("local", "camera-motion-v1"))
    assert PriceBookVersion.objects.count() == count
    assert "no new version" in response.content.decode()
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"per_second": "-1"}, "Per second"),
        ({"per_video": "abc"}, "Per video"),
        ({"per_video": "2.5"}, "Per video"),
        ({"per_second": ""}, "Per second"),
        ({"per_video": str(2**40)}, "Per video"),
        ({"per_second": "2", "note": ""}, "Note"),
    ],
)
def test_a_bad_price_or_a_missing_note_is_refused(staff_client, fields, label):
    count = PriceBookVersion.objects.count()
    response = edit_price(staff_client, price_rule("local", "camera-motion-v1"), **fields)
    errors = errors_of(response)
    assert errors and errors[0].startswith(f"{label}: "), errors
    assert PriceBookVersion.objects.count() == count


def test_an_edit_made_on_an_outdated_version_is_refused(staff_client):
    stale = price_rule("local", "camera-motion-v1")
    edit_price(staff_client, price_rule("stability", "stable-video-diffusion"), per_video="25")
    count = PriceBookVersion.objects.count()
    response = edit_price(staff_client, stale, per_second="9")
    [error] = errors_of(response)
    assert "changed while you were editing" in error
    assert PriceBookVersion.objects.count() == count
    assert prices.quote("stability", "stable-video-diffusion", {}).amount == 25  # kept


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_price_edits_from_the_same_version_at_once_make_one_version(staff):
    """Otherwise the second copy of the old book would silently drop the first edit."""
    seen = PriceBookVersion.objects.latest()
    local, stability = (
        price_rule("local", "camera-motion-v1"),
        price_rule("stability", "stable-video-diffusion"),
    )
    barrier, results = threading.Barrier(2), [None, None]

    def edit(index, rule, field):
        barrier.wait()
        try:
            results[index] = edit_prices(staff, seen.pk, {rule.pk: {field: 7}}, note="race")
        except PriceBookChanged as error:
            results[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=edit, args=(0, local, "per_second")),
        threading.Thread(target=edit, args=(1, stability, "per_video")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    made = [r for r in results if isinstance(r, PriceBookVersion)]
    assert len(made) == 1 and sum(isinstance(r, PriceBookChanged) for r in results) == 1
    assert PriceBookVersion.objects.latest() == made[0]
    assert PriceBookVersion.objects.filter(pk__gt=seen.pk).count() == 1


def test_unpublished_prices_are_marked_set_by_staff(staff_client):
    html = staff_client.get(reverse("staff_prices")).content.decode()
    unpublished = PriceBookVersion.objects.latest().rules.filter(published=False)
    assert {(r.provider, r.model) for r in unpublished} >= {
        ("modelslab", "img2video"),
        ("aimlapi", "kling-video/v1/standard/image-to-video"),
    }
    for rule in PriceBookVersion.objects.latest().rules.all():
        row = row_of(html, f'id="rule-{rule.pk}"')
        assert (">set by staff<" in row) != rule.published, rule
        assert (">published<" in row) == rule.published, rule


def test_the_price_page_lists_earlier_versions_and_shows_them_read_only(staff_client):
    old = PriceBookVersion.objects.latest()
    edit_price(staff_client, price_rule("local", "camera-motion-v1"), per_second="2", note="Up")
    html = staff_client.get(reverse("staff_prices")).content.decode()
    assert f"?version={old.pk}" in html and "Up" in html
    response = staff_client.get(reverse("staff_prices"), {"version": old.pk})
    html = response.content.decode()
    assert "an earlier version, read-only" in html
    assert 'name="per_second"' not in html
    local = old.rules.get(provider="local")
    assert re.findall(r'<td class="num">(\d+)', row_of(html, f'id="rule-{local.pk}"')) == [
        "0",
        "1",
    ]
    for missing in ("999999", "9" * 30):
        assert staff_client.get(reverse("staff_prices"), {"version": missing}).status_code == 404


def test_prices_are_grouped_by_provider(staff_client):
    html = staff_client.get(reverse("staff_prices")).content.decode()
    headings = re.findall(r"<h2>([^<]+)</h2>", html)
    providers = sorted(set(PriceRule.objects.values_list("provider", flat=True)))
    assert headings[: len(providers)] == providers


# --- The audit log --------------------------------------------------------------------------
def test_the_audit_page_lists_staff_actions_newest_first(personas, staff_client):
    staff_client.post(grant_url(personas.team), {"amount": "40", "reason": "First"})
    staff_client.post(grant_url(personas.outsider_team), {"amount": "-0", "reason": "No-op"})
    staff_client.post(grant_url(personas.team), {"amount": "-15", "reason": "Second"})
    edit_price(staff_client, price_rule("local", "camera-motion-v1"), per_second="2", note="Third")

    html = staff_client.get(reverse("staff_audit")).content.decode()
    assert html.index("Third") < html.index("Second") < html.index("First")
    assert "No-op" not in html
    first = row_of(html, "First")
    assert "staff@studio.test" in first and "credits.grant" in first and "Team A" in first
    assert "&quot;balance&quot;: 1000" in first and "&quot;balance&quot;: 1040" in first
    assert "prices.new_version" in row_of(html, "Third")


def test_the_audit_log_is_paginated(staff, staff_client):
    AuditEntry.objects.bulk_create(
        AuditEntry(actor=staff, action="test", target=f"t{n}") for n in range(60)
    )
    client = staff_client
    first = client.get(reverse("staff_audit")).context["page"]
    assert (len(first), first.paginator.num_pages) == (50, 2)
    assert len(client.get(reverse("staff_audit"), {"page": 2}).context["page"]) == 10


# --- The Django admin -----------------------------------------------------------------------
@pytest.fixture
def admin_client_with_data(personas, client_for, staff_client):
    staff_client.post(grant_url(personas.team), {"amount": "5", "reason": "For the admin"})
    BudgetWarning.objects.create(team=personas.team, key="low", period="2025-01", message="Low")
    superuser = User.objects.create_superuser("root@studio.test", "pw-root-123")
    return client_for(superuser)


@pytest.mark.parametrize(
    "model", ["creditaccount", "ledgerentry", "pricebookversion", "auditentry", "budgetwarning"]
)
def test_the_admin_lists_the_credit_models_for_a_superuser(admin_client_with_data, model):
    client = admin_client_with_data
    changelist = reverse(f"admin:studio_{model}_changelist")
    assert client.get(changelist).status_code == 200
    assert client.get(changelist, {"q": "Team A"}).status_code == 200
    obj = {
        "creditaccount": CreditAccount,
        "ledgerentry": LedgerEntry,
        "pricebookversion": PriceBookVersion,
        "auditentry": AuditEntry,
        "budgetwarning": BudgetWarning,
    }[model].objects.first()
    assert client.get(reverse(f"admin:studio_{model}_change", args=[obj.pk])).status_code == 200


@pytest.mark.parametrize(
    "model", ["ledgerentry", "pricebookversion", "auditentry", "creditaccount"]
)
def test_the_admin_cannot_add_or_delete_credit_records(admin_client_with_data, model):
    assert admin_client_with_data.get(reverse(f"admin:studio_{model}_add")).status_code == 403


def test_ledger_entries_cannot_be_changed_in_the_admin(admin_client_with_data):
    from django.contrib import admin

    model_admin = admin.site._registry[LedgerEntry]
    request = type("Request", (), {"user": User.objects.get(email="root@studio.test")})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_the_admin_changes_a_cap_without_touching_the_figures_and_audits_it(
    personas, admin_client_with_data
):
    account = ledger.account(personas.team)
    url = reverse("admin:studio_creditaccount_change", args=[account.pk])
    form = admin_client_with_data.get(url).content.decode()
    assert 'name="balance"' not in form and 'name="held"' not in form
    response = admin_client_with_data.post(
        url, {"monthly_cap": "800", "low_balance_level": "100", "balance": "999999"}
    )
    assert response.status_code == 302
    after = ledger.account(personas.team)
    assert (after.monthly_cap, after.low_balance_level) == (800, 100)
    assert (after.balance, after.held) == (account.balance, account.held)
    audit = AuditEntry.objects.get(action="credits.limits")
    assert audit.before == {"monthly_cap": None, "low_balance_level": 50}
    assert audit.after == {"monthly_cap": 800, "low_balance_level": 100}


def test_the_admin_signs_in_only_through_the_throttled_site_login(client, staff):
    # Django's own admin form was not throttled: 100 wrong passwords, then the right one worked.
    answer = client.post("/admin/login/", {"username": staff.email, "password": "pw-staff-123"})
    assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session  # the admin form authenticates nobody
    assert client.get("/admin/").status_code == 302
