"""The team's jobs as the API shows them, read with one fixed SQL statement (plus the WHERE
clauses a list's filters add). Job GET and the job list are the API's hot paths, and Django
compiling the equivalent queryset (two joins, a filtered join on the ledger) cost more CPU than
all the rest of the request (bench/api.py). The statement is plain SQL that PostgreSQL and
SQLite both run; values go in as parameters, prepared by the fields' own database adapters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import connection

from studio.models import EntryKind, Job, LedgerEntry, Team, User

# Job columns job_data and the ETA read: anything else would be loaded on access, one query each.
COLUMNS = (
    "id", "team_id", "creator_id", "source_job_id", "state", "provider", "model", "params",
    "progress", "eta_at", "status_note", "error", "price_quoted", "input_image", "input_width",
    "input_height", "video", "poster", "video_width", "video_height", "video_duration",
    "video_bytes", "created_at", "running_at", "finished_at", "deleted_at",
)  # fmt: skip


@cache
def _select() -> str:
    columns = ", ".join(f"j.{name}" for name in COLUMNS)
    settled = ", ".join(f"'{kind}'" for kind in (EntryKind.CAPTURE, EntryKind.RELEASE))
    return (
        f"SELECT {columns}, u.email AS creator_email, t.slug AS team_slug, "
        "s.kind AS settled_kind, s.amount AS settled_amount, s.reason AS settled_reason "
        f"FROM {Job._meta.db_table} j "
        f"JOIN {Team._meta.db_table} t ON t.id = j.team_id "
        f"LEFT JOIN {User._meta.db_table} u ON u.id = j.creator_id "
        f"LEFT JOIN {LedgerEntry._meta.db_table} s ON s.job_id = j.id AND s.kind IN ({settled})"
    )


@dataclass
class JobQuery:
    """Which of a team's jobs: one by id, or a page of a filtered list, newest first. Without a
    team (a worker describing a job for its webhook) the job id alone says which."""

    team_id: int | None = None
    job_id: uuid.UUID | None = None
    states: tuple[str, ...] = ()
    provider: str = ""
    member_email: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    live_only: bool = False
    after: tuple[datetime, uuid.UUID] | None = None  # a page cursor's last (created_at, id)
    limit: int | None = None


def read(query: JobQuery) -> list[Job]:
    sql, params = [_select(), "WHERE 1 = 1"], []
    if query.team_id is not None:
        sql.append("AND j.team_id = %s")
        params.append(query.team_id)
    if query.job_id is not None:
        sql.append("AND j.id = %s")
        params.append(_uuid(query.job_id))
    if query.states:
        sql.append(f"AND j.state IN ({', '.join(['%s'] * len(query.states))})")
        params += list(query.states)
    if query.provider:
        sql.append("AND j.provider = %s")
        params.append(query.provider)
    if query.member_email:
        sql.append("AND LOWER(u.email) = LOWER(%s)")
        params.append(query.member_email)
    if query.created_after:
        sql.append("AND j.created_at >= %s")
        params.append(_stamp(query.created_after))
    if query.created_before:
        sql.append("AND j.created_at < %s")
        params.append(_stamp(query.created_before))
    if query.live_only:
        sql.append("AND j.deleted_at IS NULL")
    if query.after:
        stamp, last_id = query.after
        sql.append("AND (j.created_at < %s OR (j.created_at = %s AND j.id < %s))")
        params += [_stamp(stamp), _stamp(stamp), _uuid(last_id)]
    sql.append("ORDER BY j.created_at DESC, j.id DESC")
    if query.limit is not None:
        sql.append("LIMIT %s")
        params.append(query.limit)
    return list(Job.objects.raw(" ".join(sql), params))


def one(job_id, team_id: int | None = None) -> Job | None:
    found = read(JobQuery(team_id=team_id, job_id=job_id))
    return found[0] if found else None


def _uuid(value) -> object:
    return Job._meta.pk.get_db_prep_value(uuid.UUID(str(value)), connection)


def _stamp(value: datetime) -> object:
    return Job._meta.get_field("created_at").get_db_prep_value(value, connection)
