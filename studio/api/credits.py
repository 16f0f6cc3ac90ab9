"""Credits: what the team has, holds and may still spend this month; the ledger; a price quote
with what would remain."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from ninja import Query, Router, Schema, Status

from studio.api.bodies import body, fields, job_fields
from studio.api.errors import answers
from studio.api.filters import day
from studio.api.job_requests import BadRequest, read_json
from studio.api.pages import DEFAULT_LIMIT, MAX_LIMIT, PageMeta, page
from studio.billing import budgets, ledger, usage
from studio.billing.estimate import estimate
from studio.models import EntryKind

router = Router(tags=["credits"])


class CreditsOut(Schema):
    balance: int
    held: int
    available: int
    low_balance_level: int
    low: bool  # available at or below low_balance_level: the banner's and `credits.low`'s test
    period: str  # the calendar month the limits count, YYYY-MM
    team_monthly_cap: int | None
    team_committed: int
    team_cap_remaining: int | None
    your_monthly_limit: int | None
    your_committed: int
    your_limit_remaining: int | None


@router.get("", response=answers(200, CreditsOut), summary="Balance, held, available, limits")
def credits(request):
    caller = request.caller
    team, member = caller.team, caller.membership
    account = ledger.account(team)
    team_committed = budgets.committed(team)
    mine = budgets.committed(team, member.user)
    cap, limit = account.monthly_cap, member.monthly_limit
    return Status(
        200,
        {
            "balance": account.balance,
            "held": account.held,
            "available": account.available,
            "low_balance_level": account.low_balance_level,
            "low": budgets.account_is_low(account),
            "period": budgets.period_key(),
            "team_monthly_cap": cap,
            "team_committed": team_committed,
            "team_cap_remaining": None if cap is None else max(0, cap - team_committed),
            "your_monthly_limit": limit,
            "your_committed": mine,
            "your_limit_remaining": None if limit is None else max(0, limit - mine),
        },
    )


class EntryOut(Schema):
    id: int
    kind: str
    amount: int
    balance_change: int
    available_change: int
    job: str | None
    member: str | None
    actor: str | None
    provider: str
    reason: str
    created_at: datetime


class LedgerPage(Schema):
    items: list[EntryOut]
    page: PageMeta


class LedgerFilters(Schema):
    kind: EntryKind | None = None
    provider: str | None = None
    member: str | None = None  # an e-mail address of the team
    job: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


@router.get("/ledger", response=answers(200, LedgerPage), summary="The ledger, newest first")
def ledger_page(request, filters: Query[LedgerFilters]):
    entries = usage.filter_ledger(
        usage.ledger_entries(request.caller.team),
        provider=filters.provider or "",
        kind=filters.kind or "",
        date_from=day(filters.date_from, "date_from"),
        date_to=day(filters.date_to, "date_to"),
    )
    if filters.member:
        entries = entries.filter(member__email__iexact=filters.member)
    if filters.job:
        entries = entries.filter(job_id=_uuid_or_none(filters.job))
    limit = min(max(filters.limit, 1), MAX_LIMIT)
    rows, next_cursor = page(entries, filters.cursor, limit)
    items = [
        {
            "id": e.pk,
            "kind": e.kind,
            "amount": e.amount,
            "balance_change": e.balance_change,
            "available_change": e.available_change,
            "job": str(e.job_id) if e.job_id else None,
            "member": e.member.email if e.member else None,
            "actor": e.actor.email if e.actor else None,
            "provider": e.provider,
            "reason": e.reason,
            "created_at": e.created_at,
        }
        for e in rows
    ]
    return Status(200, {"items": items, "page": {"next_cursor": next_cursor, "limit": limit}})


def _uuid_or_none(text: str):
    try:
        return uuid.UUID(text)
    except ValueError:
        return None  # matches no entry


class QuoteOut(Schema):
    provider: str
    model: str
    price: int
    available: int
    remaining_after: int
    team_cap_remaining: int | None
    your_limit_remaining: int | None
    affordable: bool


QUOTE_BODY = body(json=fields(job_fields(), required=["provider", "model"]))


quotes = Router(tags=["credits"])


@quotes.post(
    "",
    response=answers(200, QuoteOut),
    summary="Price a job before creating it",
    openapi_extra={"requestBody": QUOTE_BODY},
)
def quote(request):
    """The price of a job with these parameters, and what the team and you would have left."""
    body = read_json(request)
    provider_key, model, params = body.get("provider"), body.get("model"), body.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest(422, "invalid", "params must be an object.", "params")
    data = {**params, "model": model if isinstance(model, str) else ""}
    provider_key = provider_key if isinstance(provider_key, str) else ""
    figures = estimate(request.caller.membership, provider_key, data)
    if figures.price is None:
        raise BadRequest(422, "invalid", figures.problem, figures.problem_field)
    return Status(
        200,
        {
            "provider": provider_key,
            "model": data["model"],
            "price": figures.price,
            "available": figures.available,
            "remaining_after": figures.remaining,
            "team_cap_remaining": figures.team_cap_remaining,
            "your_limit_remaining": figures.member_remaining,
            "affordable": figures.affordable,
        },
    )
