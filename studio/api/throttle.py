"""Requests per token per minute, counted in the cache in fixed one-minute windows; beyond the
limit the API answers 429 with Retry-After (the seconds until the window turns)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches

WINDOW = 60


class RateLimited(Exception):
    def __init__(self, retry_after: int, limit: int):
        super().__init__(f"More than {limit} requests a minute with this token.")
        self.retry_after, self.limit = retry_after, limit


def count_request(token_id: int, now: float | None = None) -> None:
    """Count one request of the token; RateLimited once it is over the minute's limit."""
    now = time.time() if now is None else now
    window = int(now // WINDOW)
    key = f"studio:api-rate:{token_id}:{window}"
    cache = caches["api_throttle"]
    if cache.add(key, 1, WINDOW + 5):
        used = 1
    else:
        try:
            used = cache.incr(key)
        except ValueError:  # the window's key expired between add and incr
            cache.add(key, 1, WINDOW + 5)
            used = 1
    limit = settings.API_RATE_LIMIT_PER_MINUTE
    if used > limit:
        raise RateLimited(max(1, int((window + 1) * WINDOW - now) + 1), limit)
