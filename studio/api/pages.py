"""Cursor pagination for lists ordered newest first by (created_at, id): a cursor names the last
item of a page, so pages stay right while new items arrive, and each page is one indexed query
whatever its depth. Cursors are signed: a forged or altered one is refused, never trusted."""

from __future__ import annotations

from datetime import datetime

from django.core import signing
from django.db.models import Q, QuerySet
from ninja import Schema

SALT = "studio.api-cursor"
DEFAULT_LIMIT, MAX_LIMIT = 25, 100


class BadCursor(ValueError):
    pass


class PageMeta(Schema):
    next_cursor: str | None
    limit: int


def decode(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor names."""
    try:
        stamp, last_id = signing.loads(cursor, salt=SALT)
        return datetime.fromisoformat(stamp), str(last_id)
    except (signing.BadSignature, ValueError, TypeError):
        raise BadCursor("This cursor is not one we gave out; start from the first page.") from None


def encode(last) -> str:
    return signing.dumps([last.created_at.isoformat(), str(last.pk)], salt=SALT)


def split(rows: list, limit: int) -> tuple[list, str | None]:
    """A page from `limit + 1` rows read: the page, and the next cursor if there is more."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode(rows[limit - 1])


def page(items: QuerySet, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """One page of `items` (ordered by -created_at, -id) after `cursor`, and the next cursor."""
    if cursor:
        stamp, last_id = decode(cursor)
        items = items.filter(Q(created_at__lt=stamp) | Q(created_at=stamp, pk__lt=last_id))
    return split(list(items.order_by("-created_at", "-pk")[: limit + 1]), limit)
