"""Staff actions on credits and prices, each recorded in the audit log with before and after."""

from django.db import transaction
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    OuterRef,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from studio.billing import budgets, ledger
from studio.models import (
    AuditEntry,
    CreditAccount,
    Membership,
    PriceBookVersion,
    PriceRule,
    Team,
)


def record(actor, action: str, target, *, reason: str = "", before=None, after=None) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        action=action,
        target=str(target)[:200],
        reason=reason[:300],
        before=before,
        after=after,
    )


def _figures(team: Team) -> dict:
    account = ledger.account(team)
    return {"balance": account.balance, "held": account.held, "available": account.available}


def grant_or_adjust(actor, team: Team, amount: int, reason: str):
    """A positive amount is a grant; a negative one an adjustment down. Both need a reason."""
    with transaction.atomic():
        ledger.account(team, lock=True)  # "before" must be the figures this change starts from
        before = _figures(team)
        if amount > 0:
            entry = ledger.grant(team, amount, actor=actor, reason=reason)
        else:
            entry = ledger.adjust(team, amount, actor=actor, reason=reason)
        record(
            actor, f"credits.{entry.kind}", team, reason=reason, before=before, after=_figures(team)
        )
        budgets.send_warnings(team, None)  # an adjustment down can cross the low-balance level
    return entry


RULE_FIELDS = (
    "provider",
    "model",
    "resolution",
    "duration",
    "plan",
    "audio",
    "per_video",
    "per_second",
    "published",
    "source",
)


def rule_dict(rule: PriceRule) -> dict:
    return {field: getattr(rule, field) for field in RULE_FIELDS}


class PriceBookChanged(Exception):
    """Someone made a new price book version while the editor was looking at an older one."""


def edit_prices(actor, version_id: int, changes: dict[int, dict], *, note: str) -> PriceBookVersion:
    """Copy the price book the editor saw (`version_id`) with `changes` ({rule id: {field: value}})
    as a new version, refused unless that version is still the current one.

    Jobs keep the version they were quoted from, so old quotes never change. The changes name rules
    of the version the editor saw: applied to a newer one they would silently miss, or copy the old
    book over someone else's edit.
    """
    with transaction.atomic():
        # Wait for an edit in progress. The locked read returns the version it waited on even when
        # that edit has made a newer one, so read again: a new statement sees the new version.
        PriceBookVersion.objects.select_for_update().latest()
        current = PriceBookVersion.objects.latest()
        if current.pk != version_id:
            raise PriceBookChanged(
                f"The price book changed while you were editing: it is now v{current.pk}. "
                "Check the prices and make your change again."
            )
        version = PriceBookVersion.objects.create(created_by=actor, note=note)
        before, after = {}, {}
        for rule in current.rules.all():
            values = rule_dict(rule)
            if rule.pk in changes:
                before[str(rule)] = {k: values[k] for k in changes[rule.pk]}
                values.update(changes[rule.pk])
                after[str(rule)] = {k: values[k] for k in changes[rule.pk]}
            PriceRule.objects.create(version=version, **values)
        record(actor, "prices.new_version", version, reason=note, before=before, after=after)
    return version


def teams_with_figures():
    """Teams with their credit figures, this month's committed credits and the low-balance flag
    (by the definitions in `budgets`), and a member count, all in one query."""
    committed = (
        budgets.month_commitments()
        .filter(team=OuterRef("pk"))
        .order_by()
        .values("team")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    members = (
        Membership.objects.filter(team=OuterRef("pk"))
        .order_by()
        .values("team")
        .annotate(n=Count("pk"))
        .values("n")
    )
    # A team whose account was never made reads as an empty one (ledger.account makes it).
    default_level = CreditAccount._meta.get_field("low_balance_level").default
    return Team.objects.annotate(
        balance=Coalesce(F("credits__balance"), 0),
        held=Coalesce(F("credits__held"), 0),
        available=F("balance") - F("held"),
        low_level=Coalesce(F("credits__low_balance_level"), Value(default_level)),
        monthly_cap=F("credits__monthly_cap"),
        committed=Coalesce(Subquery(committed), 0),
        member_count=Coalesce(Subquery(members), 0),
        is_low=ExpressionWrapper(
            budgets.low_condition("available", "low_level"), output_field=BooleanField()
        ),
    )
