"""The credit flow: quotes, reservations, settlement exactly once, budgets and warnings."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from studio.billing import budgets, ledger
from studio.billing.checks import ledger_problems
from studio.billing.errors import CreditError
from studio.billing.prices import quote
from studio.jobs.states import cancel, transition
from studio.models import (
    BudgetWarning,
    CreditAccount,
    EntryKind,
    ImageUpload,
    Job,
    JobState,
    LedgerEntry,
)
from tests.conftest import FAST_PARAMS
from tests.factories import make_job
from tests.racing import race

S = JobState


def submit(client, team, image_upload, **params):
    return client.post(
        f"/t/{team.slug}/jobs/new/",
        {"image": image_upload(), "provider": "local", **FAST_PARAMS, **params},
    )


def set_available(team, amount):
    """Bring a team's available credits to exactly `amount`, through the ledger."""
    current = ledger.account(team).available
    if amount != current:
        ledger.adjust(team, amount - current, actor=None, reason="test set-up")


# --- Price book -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "params", "price"),
    [
        ("stability", "stable-video-diffusion", {}, 20),
        ("akool", "image2video", {"resolution": "720p", "duration": 5}, 20),
        ("akool", "image2video", {"resolution": "1080p", "duration": 5}, 25),
        ("akool", "image2video", {"resolution": "4k", "duration": 10}, 60),
        ("akool", "image2video", {"duration": 10, "audio": True}, 10),
        ("modelslab", "img2video_ultra", {}, 31),
        ("local", "camera-motion-v1", {"duration": 7}, 7),
    ],
)
def test_the_default_price_book_mirrors_the_documented_tables(db, provider, model, params, price):
    assert quote(provider, model, params).amount == price


def test_the_modelslab_ultra_price_follows_the_plan_we_hold(db, settings):
    settings.PROVIDER_PLANS = {"modelslab": "standard"}
    assert quote("modelslab", "img2video_ultra", {}).amount == 43


# --- Submitting -----------------------------------------------------------------------------
def test_submitting_reserves_the_quoted_price_in_the_same_transaction(
    personas, client_for, image_upload, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        submit(client_for(personas.member), personas.team, image_upload, duration=3)
    job = Job.objects.get()
    assert job.price_quoted == 3 and job.price_version is not None
    assert job.state == S.SUCCEEDED
    kinds = list(job.ledger.order_by("id").values_list("kind", "amount"))
    assert kinds == [(EntryKind.RESERVE, 3), (EntryKind.CAPTURE, 3)]
    account = ledger.account(personas.team)
    assert (account.balance, account.held) == (997, 0)


def test_the_form_shows_the_price_and_what_would_remain(personas, client_for):
    set_available(personas.team, 40)
    client = client_for(personas.member)
    page = client.get(f"/t/{personas.team.slug}/jobs/new/").content.decode()
    assert "5 credits" in page and 'id="price-remaining">35<' in page
    partial = client.get(
        f"/t/{personas.team.slug}/jobs/new/price/",
        {"provider": "local", **FAST_PARAMS, "duration": 9},
    ).content.decode()
    assert "9 credits" in partial and 'id="price-remaining">31<' in partial


def test_exactly_the_balance_is_allowed_and_one_more_is_refused(
    personas, client_for, image_upload, media_root
):
    set_available(personas.team, 4)
    client = client_for(personas.member)
    refused = submit(client, personas.team, image_upload, duration=5)
    assert "costs 5 credits but the team has 4 available: 1 short" in refused.content.decode()
    # No job file is left behind; the one picture kept is the form's, to offer again unchosen.
    kept = [Path(upload.file.path) for upload in ImageUpload.objects.all()]
    assert Job.objects.count() == 0 and list(media_root.rglob("*.png")) == kept and len(kept) == 1
    submit(client, personas.team, image_upload, duration=4)
    assert Job.objects.count() == 1 and ledger.account(personas.team).available == 0


def test_a_cap_of_zero_blocks_every_job(personas, client_for, image_upload):
    CreditAccount.objects.filter(team=personas.team).update(monthly_cap=0)
    response = submit(client_for(personas.member), personas.team, image_upload)
    assert "over its cap of 0 by 1" in response.content.decode()
    assert Job.objects.count() == 0


def test_a_member_limit_names_itself_and_the_excess(personas, client_for, image_upload):
    personas.team.memberships.filter(user=personas.member).update(monthly_limit=6)
    client = client_for(personas.member)
    submit(client, personas.team, image_upload, duration=5)
    response = submit(client, personas.team, image_upload, duration=3)
    assert "over your limit of 6 by 2" in response.content.decode()
    assert Job.objects.count() == 1


def test_a_failed_job_is_refunded_with_its_reason_shown_to_members(personas, client_for):
    job = make_job(personas.team, personas.member, state=S.RUNNING, price=5)
    transition(job, S.RUNNING, S.FAILED, error="The provider refused the image")
    page = (
        client_for(personas.viewer).get(f"/t/{personas.team.slug}/jobs/{job.pk}/").content.decode()
    )
    assert "Refunded 5 credits to the team: Failed: The provider refused the image." in page
    assert ledger.account(personas.team).available == 1000


def test_canceling_a_queued_job_releases_its_credits(personas):
    job = make_job(personas.team, personas.member, price=8)
    assert ledger.account(personas.team).held == 8
    assert cancel(job)
    assert ledger.account(personas.team).held == 0
    assert job.ledger.get(kind=EntryKind.RELEASE).reason.startswith("Canceled")


def test_a_release_after_a_capture_is_refused(personas):
    job = make_job(personas.team, personas.member, state=S.SUCCEEDED, price=5)
    assert not ledger.release(job.pk, "late failure report")
    assert not ledger.capture(job.pk)
    assert job.ledger.filter(kind__in=[EntryKind.CAPTURE, EntryKind.RELEASE]).count() == 1


def test_staff_adjustments_cannot_take_available_below_zero(personas):
    make_job(personas.team, personas.member, price=900)  # 900 held, 100 available
    with pytest.raises(CreditError, match="only 100 are available"):
        ledger.adjust(personas.team, -101, actor=None, reason="correction")
    with pytest.raises(CreditError, match="needs a reason"):
        ledger.grant(personas.team, 5, actor=None, reason=" ")


def test_check_ledger_reports_a_tampered_balance_and_exits_non_zero(personas, capsys):
    call_command("check_ledger")
    assert "ledger ok" in capsys.readouterr().out
    CreditAccount.objects.filter(team=personas.team).update(balance=5000)
    with pytest.raises(CommandError, match="1 ledger problem"):
        call_command("check_ledger")
    assert "the ledger says 1000/0" in capsys.readouterr().err
    CreditAccount.objects.filter(team=personas.team).update(balance=1000)  # for the after-check


# --- Budgets and warnings -------------------------------------------------------------------
def test_budget_periods_roll_over_at_the_calendar_month(personas):
    old = make_job(personas.team, personas.member, price=30)
    last_month = budgets.period_start() - timedelta(days=3)
    LedgerEntry.objects.filter(job=old).update(created_at=last_month)
    make_job(personas.team, personas.member, price=7)  # this month
    assert budgets.committed(personas.team) == 7
    assert budgets.committed(personas.team, now=last_month) == 30
    assert budgets.period_key(last_month) != budgets.period_key()


def test_warnings_are_sent_once_per_threshold_per_period(
    personas, client_for, image_upload, django_capture_on_commit_callbacks
):
    CreditAccount.objects.filter(team=personas.team).update(monthly_cap=10, low_balance_level=0)
    client = client_for(personas.member)
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, personas.team, image_upload, duration=8)  # 80 %
        submit(client, personas.team, image_upload, duration=1)  # 90 %: nothing new
        submit(client, personas.team, image_upload, duration=1)  # 100 %
    keys = sorted(BudgetWarning.objects.values_list("key", flat=True))
    assert keys == ["team-cap-100", "team-cap-80"]
    assert len(mail.outbox) == 2 and mail.outbox[0].to == ["owner@a.test"]
    page = client.get(f"/t/{personas.team.slug}/").content.decode()
    assert "100% reached" in page  # the banner
    # A month later: move what happened into last month; the same threshold warns again, once.
    last_month = budgets.period_start() - timedelta(days=3)
    BudgetWarning.objects.update(period=budgets.period_key(last_month))
    LedgerEntry.objects.update(created_at=last_month)
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, personas.team, image_upload, duration=8)
    assert BudgetWarning.objects.count() == 3 and len(mail.outbox) == 3


def test_only_owners_and_admins_set_limits(personas, client_for):
    url = f"/t/{personas.team.slug}/settings/budgets/"
    member = personas.membership(personas.member)
    data = {"monthly_cap": "500", "low_balance_level": "20", f"limit-{member.pk}": "50"}
    assert client_for(personas.member).post(url, data).status_code == 403
    assert client_for(personas.viewer).get(url).status_code == 403
    assert client_for(personas.owner).post(url, data).status_code == 302
    member.refresh_from_db()
    assert member.monthly_limit == 50 and ledger.account(personas.team).monthly_cap == 500
    bad = client_for(personas.owner).post(url, {**data, f"limit-{member.pk}": "lots"}, follow=True)
    assert "must be a whole number" in bad.content.decode()


# --- Concurrency (PostgreSQL) ---------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_success_reported_twice_at_once_captures_once(personas):
    for _ in range(5):
        job = make_job(personas.team, personas.member, state=S.RUNNING, price=7)
        results = race([lambda j=job: ledger.capture(j.pk)] * 6)
        assert results.count(True) == 1
        assert job.ledger.filter(kind=EntryKind.CAPTURE).count() == 1
        Job.objects.filter(pk=job.pk).update(state=S.SUCCEEDED)
    assert not ledger_problems()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_success_and_failure_reported_at_once_settle_once_and_match_the_state(personas):
    for _ in range(5):
        job = make_job(personas.team, personas.member, state=S.RUNNING, price=7)
        results = race(
            [
                lambda j=job: transition(j.pk, S.RUNNING, S.SUCCEEDED),
                lambda j=job: transition(j.pk, S.RUNNING, S.FAILED, error="boom"),
            ]
            * 3
        )
        assert results.count(True) == 1
        job.refresh_from_db()
        settled = job.ledger.get(kind__in=[EntryKind.CAPTURE, EntryKind.RELEASE])
        assert settled.kind == (
            EntryKind.CAPTURE if job.state == S.SUCCEEDED else EntryKind.RELEASE
        )
    assert ledger.account(personas.team).held == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_database_allows_one_settlement_when_capture_and_release_race(personas):
    """Below the state machine: even direct ledger calls cannot settle a job twice."""
    for _ in range(5):
        job = make_job(personas.team, personas.member, state=S.RUNNING, price=7)
        results = race(
            [lambda j=job: ledger.capture(j.pk), lambda j=job: ledger.release(j.pk, "racing")] * 3
        )
        assert results.count(True) == 1
        settled = job.ledger.get(kind__in=[EntryKind.CAPTURE, EntryKind.RELEASE])
        # Give the job the state its settlement says, as the state machine would have.
        Job.objects.filter(pk=job.pk).update(
            state=S.SUCCEEDED if settled.kind == EntryKind.CAPTURE else S.FAILED
        )
    assert ledger.account(personas.team).held == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_200_submissions_at_once_against_credits_for_50_accept_exactly_50(
    personas, image_upload, monkeypatch
):
    from django_q.conf import Conf

    from studio.jobs.submit import JobRefused, submit_job

    monkeypatch.setattr(Conf, "SYNC", False)  # queue the jobs; no worker runs them here
    set_available(personas.team, 50)
    member = personas.membership(personas.member)
    uploads = [image_upload() for _ in range(200)]
    params = {**FAST_PARAMS, "duration": 1}
    results = race([lambda u=u: submit_job(member, u, "local", params) for u in uploads])
    accepted = [r for r in results if isinstance(r, Job)]
    refused = [r for r in results if isinstance(r, JobRefused)]
    assert len(accepted) == 50 and len(refused) == 150, {type(r) for r in results}
    assert all("short" in str(r) for r in refused)
    assert Job.objects.count() == 50
    account = ledger.account(personas.team)
    assert (account.balance, account.held, account.available) == (50, 50, 0)
    assert LedgerEntry.objects.filter(kind=EntryKind.RESERVE).count() == 50
    assert not ledger_problems()


def test_a_low_balance_warns_the_owners_once_and_shows_a_banner(
    personas, client_for, image_upload, django_capture_on_commit_callbacks
):
    set_available(personas.team, 60)  # the default warning level is 50
    client = client_for(personas.member)
    with django_capture_on_commit_callbacks(execute=True):
        submit(client, personas.team, image_upload, duration=9)  # 51 left: no warning yet
        submit(client, personas.team, image_upload, duration=2)  # 49 left: warn
        submit(client, personas.team, image_upload, duration=1)  # still low: already warned
    assert list(BudgetWarning.objects.values_list("key", flat=True)) == ["low-balance"]
    assert len(mail.outbox) == 1 and "Only 49 credits are available" in mail.outbox[0].body
    assert "(the warning level is 50)" in client.get(f"/t/{personas.team.slug}/").content.decode()


def test_grant_credits_from_the_command_line_is_audited(personas, capsys):
    from studio.models import AuditEntry

    call_command("grant_credits", personas.team.slug, "250", "--reason", "Pilot budget")
    assert "balance 1250" in capsys.readouterr().out
    audit = AuditEntry.objects.get()
    assert (audit.action, audit.reason, audit.after["balance"]) == (
        "credits.grant",
        "Pilot budget",
        1250,
    )
    with pytest.raises(CommandError, match="only 1250 are available"):
        call_command("grant_credits", personas.team.slug, "-5000", "--reason", "oops")
    with pytest.raises(CommandError, match="matches no teams"):
        call_command("grant_credits", "nope", "5", "--reason", "x")


def test_a_mail_server_that_fails_does_not_break_the_submission(
    personas, client_for, image_upload, django_capture_on_commit_callbacks, monkeypatch
):
    import studio.billing.budgets as budget_module

    def broken_mail(*args, **kwargs):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr(budget_module, "send_mail", broken_mail)
    set_available(personas.team, 55)
    with django_capture_on_commit_callbacks(execute=True):
        response = submit(client_for(personas.member), personas.team, image_upload, duration=9)
    job = Job.objects.get()
    assert response.status_code == 302 and job.state == S.SUCCEEDED and job.input_image
    assert BudgetWarning.objects.filter(key="low-balance").exists()


def test_a_staff_adjustment_below_the_warning_level_warns_the_owners(
    personas, django_capture_on_commit_callbacks
):
    from studio.billing.staff import grant_or_adjust

    with django_capture_on_commit_callbacks(execute=True):
        grant_or_adjust(None, personas.team, -960, "correction")
    assert "Only 40 credits are available" in mail.outbox[0].body


def test_the_database_refuses_a_settlement_without_its_reservation(personas):
    from django.db import IntegrityError, transaction

    job = make_job(personas.team, personas.member, state=S.RUNNING, price=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(team=personas.team, kind=EntryKind.CAPTURE, amount=3, job=job)


@pytest.mark.parametrize("bad", ["²", "9" * 30, "-3", "1.5"])
def test_a_bad_member_limit_is_a_clear_error_not_a_crash(personas, client_for, bad):
    member = personas.membership(personas.member)
    url = f"/t/{personas.team.slug}/settings/budgets/"
    data = {"monthly_cap": "", "low_balance_level": "20", f"limit-{member.pk}": bad}
    response = client_for(personas.owner).post(url, data, follow=True)
    assert response.status_code == 200 and "must be a whole number" in response.content.decode()
    member.refresh_from_db()
    assert member.monthly_limit is None
