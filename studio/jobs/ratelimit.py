"""Provider rate limits, exact across every worker process: a token bucket per provider account,
kept in that account's database row and changed only under its row lock.

A bucket of capacity C refilled at r per second lets through at most C + r·W requests in any
window W, so C + r·W is set to the provider's limit times its target share (Stability: 150 per
10 s, target 0.9 → at most 135 in any 10 s)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from studio.models import ProviderAccount
from studio.providers.base import Provider


def account(provider: Provider, fingerprint: str, *, lock: bool = False) -> ProviderAccount:
    rows = ProviderAccount.objects.select_for_update() if lock else ProviderAccount.objects
    found = rows.filter(provider=provider.key, fingerprint=fingerprint).first()
    if found is None:
        try:
            with transaction.atomic():
                ProviderAccount.objects.create(provider=provider.key, fingerprint=fingerprint)
        except IntegrityError:  # another process created it first
            pass
        found = rows.get(provider=provider.key, fingerprint=fingerprint)
    return found


def bucket_shape(provider: Provider) -> tuple[float, float]:
    """(capacity, refill per second) of the provider's bucket."""
    limit = provider.rate_limit
    allowed = limit.requests * limit.target
    capacity = max(1.0, allowed / 10)
    return capacity, (allowed - capacity) / provider.figure(limit.window).total_seconds()


def take(provider: Provider, fingerprint: str, wanted: int, now: datetime | None = None) -> int:
    """Take up to `wanted` request tokens; returns how many were granted (0 while paused).
    Call inside a transaction: the account row stays locked until it commits."""
    if wanted <= 0:
        return 0
    now = now or timezone.now()
    row = account(provider, fingerprint, lock=True)
    if row.paused_until and row.paused_until > now:
        return 0
    if provider.rate_limit is None:
        return wanted
    capacity, rate = bucket_shape(provider)
    if row.refilled_at is None:
        tokens = capacity
    else:
        elapsed = max(0.0, (now - row.refilled_at).total_seconds())
        tokens = min(capacity, row.tokens + elapsed * rate)
    granted = min(wanted, int(tokens))
    ProviderAccount.objects.filter(pk=row.pk).update(tokens=tokens - granted, refilled_at=now)
    return granted


def pause(provider: Provider, fingerprint: str, seconds: float, message: str) -> None:
    """The provider said 429: nobody uses this account until the pause is over. Its own hint
    decides how long; without one, the documented lock-out (Stability: 60 s)."""
    now = timezone.now()
    documented = provider.figure(provider.rate_limit.pause) if provider.rate_limit else timedelta(0)
    until = now + (timedelta(seconds=seconds) if seconds > 0 else documented)
    row = account(provider, fingerprint)
    ProviderAccount.objects.filter(pk=row.pk).update(
        paused_until=until, tokens=0, refilled_at=until, last_error=message[:300], last_error_at=now
    )


def note_error(provider: Provider, fingerprint: str, message: str) -> None:
    row = account(provider, fingerprint)
    ProviderAccount.objects.filter(pk=row.pk).update(
        last_error=message[:300], last_error_at=timezone.now()
    )
