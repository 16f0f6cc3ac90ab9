"""The team's ledger as a CSV download: every entry the page's filters select, newest first, with
the team's balance and available credits after each.

On PostgreSQL the database writes the CSV itself (`COPY ... TO STDOUT`): a 20,000-row ledger
then costs the web process almost nothing per row, where reading the rows into Python and
formatting each date, id and cell cost about 15 µs a row. Elsewhere (SQLite, the embedded default)
csv.writer writes the same rows; a test holds both to the same parsed rows.
"""

import csv
import io
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC
from uuid import UUID

from django.db import connection
from django.db.models import F
from django.utils.dateparse import parse_datetime

from studio.billing.usage import day_start, ledger_filter, running_sql, signed_effect
from studio.models import Team

CSV_HEADER = [
    "date",
    "kind",
    "amount",
    "balance change",
    "available change",
    "job",
    "member",
    "provider",
    "reason",
    "actor",
    "balance after",
    "available after",
]
CSV_COLUMNS = {
    "kind": F("kind"),
    "amount": F("amount"),
    "balance_change": signed_effect("balance"),
    "available_change": signed_effect("available"),
    "job": F("job_id"),
    "member": F("member__email"),
    "provider": F("provider"),
    "reason": F("reason"),
    "actor": F("actor__email"),
}
TEXT_COLUMNS = ("member", "provider", "reason", "actor")  # free text: kept from running as formulas
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PIECE_BYTES = 64 * 1024  # what a streaming response is handed at a time


def spreadsheet_text(text) -> str:
    # A spreadsheet would run a cell starting like a formula; the quote makes it plain text.
    text = text or ""
    return f"'{text}" if text[:1] in FORMULA_STARTS else text


def csv_pieces(team: Team, filters: dict) -> Iterator[str | bytes]:
    """The CSV (header first) in pieces of about PIECE_BYTES, for a streaming response."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(CSV_HEADER)
    yield buffer.getvalue()
    if connection.vendor == "postgresql":
        yield from _copied(team, filters)
    else:
        yield from csv_text(csv_rows(team, filters))


def _listed_sql(team: Team, filters: dict) -> tuple[str, list]:
    start = filters.get("date_from")
    since = day_start(start) if start else None
    return running_sql(team, ledger_filter(**filters), CSV_COLUMNS, since=since)


# --- PostgreSQL: the database writes the rows ---------------------------------------------------
def _text_cell(column: str) -> str:
    """SQL for spreadsheet_text(); an empty cell is NULL, which COPY writes unquoted, as
    csv.writer writes an empty string."""
    starts = ", ".join(f"chr({ord(c)})" if c in "\t\r" else f"'{c}'" for c in FORMULA_STARTS)
    return (
        f"CASE WHEN left({column}, 1) IN ({starts}) THEN '''' || {column} "
        f"ELSE NULLIF({column}, '') END"
    )


def _copy_statement(team: Team, filters: dict) -> tuple[str, list]:
    sql, params = _listed_sql(team, filters)
    cells = [
        # The same text as _moment(): UTC, to the microsecond.
        "to_char(r.c_created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
        "r.c_kind",
        "r.c_amount",
        "r.c_balance_change",
        "r.c_available_change",
        "r.c_job::text",
        *(_text_cell(f"r.c_{name}") for name in TEXT_COLUMNS),
        "r.balance_after",
        "r.available_after",
    ]
    select = f"SELECT {', '.join(cells)} FROM ({sql}) r ORDER BY r.c_created_at DESC, r.c_id DESC"
    return f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", params


def _copied(team: Team, filters: dict) -> Iterator[bytes]:
    statement, params = _copy_statement(team, filters)
    with connection.cursor() as cursor:
        # Django's cursor has no copy(): psycopg's own takes it, counted like any query.
        logged = cursor.debug_sql(statement, params) if connection.queries_logged else nullcontext()
        with logged, cursor.cursor.copy(statement, params) as copy:
            piece = bytearray()
            for block in copy:  # a row at a time
                piece += block
                if len(piece) >= PIECE_BYTES:
                    yield bytes(piece)
                    piece.clear()
            yield bytes(piece)


# --- Elsewhere: csv.writer over plain tuples ----------------------------------------------------
def csv_text(rows: Iterator) -> Iterator[str]:
    """Rows as CSV text, a thousand rows to a piece of a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % 1000 == 0:  # a piece per row would cost more than writing the rows
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def csv_rows(team: Team, filters: dict, *, chunk_size: int = 5000) -> Iterator[tuple]:
    """One row per entry, as plain tuples read a chunk at a time from a server-side cursor, so a
    long ledger streams."""
    sql, params = _listed_sql(team, filters)
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            for (
                _,
                created_at,
                kind,
                amount,
                balance_change,
                available_change,
                job,
                member,
                provider,
                reason,
                actor,
                balance_after,
                available_after,
            ) in rows:
                yield (
                    _moment(created_at),
                    kind,
                    amount,
                    balance_change,
                    available_change,
                    _job_id(job),
                    spreadsheet_text(member),
                    spreadsheet_text(provider),
                    spreadsheet_text(reason),
                    spreadsheet_text(actor),
                    balance_after,
                    available_after,
                )


def _job_id(value) -> str:
    if value is None:
        return ""
    return str(value if isinstance(value, UUID) else UUID(value))  # SQLite: 32 hex digits


def _moment(value) -> str:
    if isinstance(value, str):  # SQLite hands a raw query's datetimes back as text
        value = parse_datetime(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")
