"""Staff actions on credits and prices, each recorded in the audit log with before and after."""

from django.db import transaction

from studio.billing import ledger
from studio.models import AuditEntry, PriceBookVersion, PriceRule, Team


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
        before = _figures(team)
        if amount > 0:
            entry = ledger.grant(team, amount, actor=actor, reason=reason)
        else:
            entry = ledger.adjust(team, amount, actor=actor, reason=reason)
        record(
            actor, f"credits.{entry.kind}", team, reason=reason, before=before, after=_figures(team)
        )
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


def new_price_version(actor, changes: dict[int, dict], *, note: str) -> PriceBookVersion:
    """Copy the current price book with `changes` ({rule id: {field: value}}) as a new version.

    Jobs keep the version they were quoted from, so old quotes never change.
    """
    with transaction.atomic():
        current = PriceBookVersion.objects.select_for_update().latest()
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
