"""What a job would cost and what would remain: the figures the new-job form shows as it changes."""

from dataclasses import dataclass

from studio.billing import budgets, ledger
from studio.billing.prices import PriceUnavailable, Quote, quote_job
from studio.models import Membership
from studio.providers import choose


@dataclass(frozen=True)
class Estimate:
    price: int | None
    problem: str
    available: int
    member_remaining: int | None
    team_cap_remaining: int | None
    problem_field: str = ""  # the parameter the problem is about ("provider" for the price book)
    breakdown: str = ""  # how the price is made: "2 credits per second × 5 seconds = 10 credits"
    source: str = ""  # where the price book's figure comes from, as staff recorded it

    @property
    def remaining(self) -> int | None:
        return None if self.price is None else self.available - self.price

    @property
    def affordable(self) -> bool:
        if self.price is None:
            return False
        limits = [self.available, self.member_remaining, self.team_cap_remaining]
        return all(limit is None or self.price <= limit for limit in limits)


def credits(amount: int) -> str:
    return f"{amount} credit{'' if amount == 1 else 's'}"


def breakdown(quote: Quote, label: str, duration: int | None) -> str:
    """The quote in words: rate × seconds for a per-second rule, else the table row it matched."""
    rule = quote.rule
    if rule.per_second:
        seconds = f"{duration} second{'' if duration == 1 else 's'}"
        rate = f"{credits(rule.per_second)} per second × {seconds}"
        base = f"{credits(rule.per_video)} per video + " if rule.per_video else ""
        return f"{base}{rate} = {credits(quote.amount)}"
    row = [label, rule.model or "any model"]
    if rule.resolution:
        row.append(rule.resolution)
    if rule.duration is not None:
        row.append(f"{rule.duration} s")
    if rule.plan:
        row.append(f"{rule.plan} plan")
    if rule.audio:
        row.append("audio only")
    return f"Price table row: {' · '.join(row)} → {credits(quote.amount)} per video"


def estimate(membership: Membership, provider_key: str, data) -> Estimate:
    team = membership.team
    account = ledger.account(team)
    member_remaining = team_cap_remaining = None
    if membership.monthly_limit is not None:
        member_remaining = membership.monthly_limit - budgets.committed(team, membership.user)
    if account.monthly_cap is not None:
        team_cap_remaining = account.monthly_cap - budgets.committed(team)
    price, problem, field, words, source = None, "", "", "", ""
    provider, spec, params, errors = choose(provider_key, data)
    if errors:
        problem = " ".join(message for messages in errors.values() for message in messages)
        field = next(iter(errors))
    else:
        try:
            quote = quote_job(provider, spec.key, params)
        except PriceUnavailable as missing:
            problem, field = str(missing), "provider"
        else:
            price, source = quote.amount, quote.rule.source
            duration = provider.price_keys(spec.key, params).get("duration")
            words = breakdown(quote, provider.label, duration)
    return Estimate(
        price,
        problem,
        account.available,
        member_remaining,
        team_cap_remaining,
        field,
        breakdown=words,
        source=source,
    )
