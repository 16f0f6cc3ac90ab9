"""What a job would cost and what would remain: the figures the new-job form shows as it changes."""

from dataclasses import dataclass

from studio.billing import budgets, ledger
from studio.billing.prices import PriceUnavailable, quote_job
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

    @property
    def remaining(self) -> int | None:
        return None if self.price is None else self.available - self.price

    @property
    def affordable(self) -> bool:
        if self.price is None:
            return False
        limits = [self.available, self.member_remaining, self.team_cap_remaining]
        return all(limit is None or self.price <= limit for limit in limits)


def estimate(membership: Membership, provider_key: str, data) -> Estimate:
    team = membership.team
    account = ledger.account(team)
    member_remaining = team_cap_remaining = None
    if membership.monthly_limit is not None:
        member_remaining = membership.monthly_limit - budgets.committed(team, membership.user)
    if account.monthly_cap is not None:
        team_cap_remaining = account.monthly_cap - budgets.committed(team)
    price, problem, field = None, "", ""
    provider, spec, params, errors = choose(provider_key, data)
    if errors:
        problem = " ".join(message for messages in errors.values() for message in messages)
        field = next(iter(errors))
    else:
        try:
            price = quote_job(provider, spec.key, params).amount
        except PriceUnavailable as missing:
            problem, field = str(missing), "provider"
    return Estimate(price, problem, account.available, member_remaining, team_cap_remaining, field)
