"""Dates and times a list is filtered by: inside the years the product can hold, in UTC, or a
clear 422 naming the filter (PostgreSQL refuses offsets past ±15:59, Python the year 10,000)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from studio.api.job_requests import BadRequest

EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


def moment(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = None
    if value is None or not EARLIEST <= value.date() <= LATEST:
        raise BadRequest(422, "invalid", f"{field} must be between {EARLIEST} and {LATEST}.", field)
    return value


def day(value: date | None, field: str) -> date | None:
    if value is not None and not EARLIEST <= value <= LATEST:
        raise BadRequest(422, "invalid", f"{field} must be between {EARLIEST} and {LATEST}.", field)
    return value
