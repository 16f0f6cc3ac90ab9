"""The ledger CSV: PostgreSQL writes it with COPY, elsewhere csv.writer does; both must give the
same cells, and a download the member abandons must leave the connection usable."""

import csv
import io
from datetime import UTC, date, timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from studio.billing import ledger, ledger_csv
from studio.models import CreditAccount, LedgerEntry
from tests.factories import make_job

AWKWARD_REASONS = [
    '=HYPERLINK("x")',
    "+1 for you",
    "-minus",
    "@mention",
    "\tTabbed",
    "\rReturned",
    'Comma, "quotes" and\nnew line',
    "Ünïcödé ✓",
    "\\.",  # COPY's end-of-data marker, when alone on a line
]


def parsed(pieces) -> list[list[str]]:
    text = "".join(p.decode() if isinstance(p, bytes) else p for p in pieces)
    return list(csv.reader(io.StringIO(text)))


def written_by_python(team, filters) -> list[list[str]]:
    return parsed(ledger_csv.csv_text([ledger_csv.CSV_HEADER, *ledger_csv.csv_rows(team, filters)]))


@pytest.fixture
def awkward_ledger(personas):
    team = personas.team
    for reason in AWKWARD_REASONS:
        ledger.grant(team, 2, actor=personas.owner, reason=reason)
    make_job(team, personas.member, state="succeeded", price=7)
    make_job(team, personas.owner, state="failed", price=3)
    make_job(team, personas.owner, state="queued", price=4)
    LedgerEntry.objects.filter(team=team, kind="reserve").update(provider="=cmd")
    return team


@pytest.mark.postgres
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"kind": "grant"},
        {"kind": "release"},
        {"date_from": date.today() - timedelta(days=1), "date_to": date.today()},
    ],
    ids=["all", "grants", "refunds", "dates"],
)
def test_copy_writes_the_same_cells_as_the_python_writer(awkward_ledger, filters):
    copied = parsed(ledger_csv.csv_pieces(awkward_ledger, filters))

    assert copied == written_by_python(awkward_ledger, filters)
    assert len(copied) > 1


@pytest.mark.postgres
def test_the_copied_csv_keeps_formulas_as_text_and_says_the_time_in_utc(awkward_ledger):
    rows = parsed(ledger_csv.csv_pieces(awkward_ledger, {}))
    reasons = {row[8] for row in rows[1:]}
    assert {'\'=HYPERLINK("x")', "'+1 for you", "'-minus", "'@mention"} <= reasons
    assert {row[7] for row in rows[1:] if row[1] == "reserve"} == {"'=cmd"}
    newest = LedgerEntry.objects.filter(team=awkward_ledger).latest("created_at", "id")
    assert rows[1][0] == newest.created_at.astimezone(UTC).isoformat(timespec="microseconds")


def lengthen(personas, entries: int):
    """`entries` more one-credit grants, each with a long reason, in one insert."""
    team = personas.team
    LedgerEntry.objects.bulk_create(
        LedgerEntry(team=team, kind="grant", amount=1, actor=personas.owner, reason="x" * 70)
        for _ in range(entries)
    )
    CreditAccount.objects.filter(team=team).update(balance=F("balance") + entries)
    return team


@pytest.mark.postgres
def test_a_long_ledger_comes_in_several_pieces_and_one_query(personas):
    team = lengthen(personas, 2000)

    with CaptureQueriesContext(connection) as queries:
        pieces = list(ledger_csv.csv_pieces(team, {}))

    assert len(queries) == 1 and queries[0]["sql"].startswith("COPY (")
    assert len(pieces) >= 3 and max(len(p) for p in pieces) < 2 * ledger_csv.PIECE_BYTES
    rows = parsed(pieces)
    assert len(rows) == 1 + 2001
    assert [row[10] for row in (rows[1], rows[-1])] == ["3000", "1000"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # as a request runs: autocommit
def test_an_abandoned_download_leaves_the_connection_usable(personas):
    team = lengthen(personas, 3000)
    pieces = ledger_csv.csv_pieces(team, {})
    next(pieces), next(pieces)  # the header, then the first rows; then the member goes away

    pieces.close()

    assert LedgerEntry.objects.filter(team=team).count() == 3001


def test_the_download_streams_every_row_with_its_running_figures(personas, client_for):
    for n in range(3):
        ledger.grant(personas.team, 10, actor=personas.owner, reason=f"Top-up {n}")

    response = client_for(personas.viewer).get(reverse("credits_csv", args=[personas.team.slug]))

    rows = parsed(response.streaming_content)
    assert rows[0] == ledger_csv.CSV_HEADER
    assert [(row[1], row[2], row[10], row[11]) for row in rows[1:]] == [
        ("grant", "10", "1030", "1030"),
        ("grant", "10", "1020", "1020"),
        ("grant", "10", "1010", "1010"),
        ("grant", "1000", "1000", "1000"),
    ]
