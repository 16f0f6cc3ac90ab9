"""Who may see what. Every team-scoped view goes through `team_view`, so a team's pages, partials
and files answer 404 to anyone who is not its member, exactly as if they did not exist.

A team page starts by reading, in one statement, the session, its signed-in user, their membership
of the team in the URL with the team, and — on a job's routes — the job: the pages members keep
open (the job status polled every 2 s above all) then cost that one query.
"""

from functools import cache, wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.http import Http404

from studio.auth import prefetched_user
from studio.models import Job, Membership, Role, Session, Team, User
from studio.prepared import execute_prepared
from studio.rows import Columns
from studio.sessions import unexpired_after, user_id_of
from studio.unchanged_polls import status_columns

CURRENT_TEAM_KEY = "current_team"


@cache
def _columns() -> tuple[Columns, Columns, Columns, Columns]:
    return Columns(User, "u"), Columns(Membership, "m"), Columns(Team, "t"), Columns(Job, "j")


@cache
def _statement(with_job: bool) -> str:
    """Parameters: the team's slug, the job's id (with_job), the session key, the time now."""
    user, membership, team, job = _columns()
    parts = [user, membership, team] + ([job] if with_job else [])
    quote = connection.ops.quote_name
    sql = [
        f"SELECT s.{quote('session_data')}, s.{quote('user_id')}, "
        f"{', '.join(part.sql() for part in parts)}",
        f"FROM {quote(Session._meta.db_table)} s",
        f"LEFT JOIN {user.table} u ON u.id = s.{quote('user_id')}",
        f"LEFT JOIN {team.table} t ON t.slug = %s",
        f"LEFT JOIN {membership.table} m ON m.team_id = t.id AND m.user_id = u.id",
    ]
    if with_job:
        # and the digest of what the job's status partial shows, for its ETag (unchanged_polls)
        sql[0] += f", {status_columns().digest_sql()}"
        sql.append(f"LEFT JOIN {job.table} j ON j.team_id = m.team_id AND j.id = %s")
    sql.append(f"WHERE s.{quote('session_key')} = %s AND s.{quote('expire_date')} > %s")
    return " ".join(sql)


def _read_member(request, slug: str, job_id) -> Membership | None:
    """The session (handed to request.session), its user (handed to Django's own session check
    through the backend), their membership of `slug` with its team, and the job asked for
    (request.job), in one query."""
    session_key = request.session.session_key
    if not session_key:
        return None
    job_param = [Job._meta.pk.get_db_prep_value(job_id, connection)] if job_id else []
    now = unexpired_after(connection)
    with connection.cursor() as cursor:
        with_job = job_id is not None
        name = "studio_member_job" if with_job else "studio_member"
        execute_prepared(cursor, name, _statement(with_job), [slug, *job_param, session_key, now])
        row = cursor.fetchone()
    if row is None:  # no such session, or expired: Django's own check says so
        return None
    if user_id_of(request.session.adopt(row[0])) != row[1]:
        # A row whose user column is not its data's (a session older than the column): the
        # data is what Django trusts, so read the way Django would.
        return _membership_or_none(request, slug)
    columns = _columns()
    user, at = columns[0].instance(row, 2)
    membership, at = columns[1].instance(row, at)
    team, at = columns[2].instance(row, at)
    prefetched_user.set(user)
    if membership is None:
        return None
    membership.team, membership.user = team, user
    if job_id is not None:
        job, at = columns[3].instance(row, at)
        request.prefetched_job = job
        if job is not None:
            job.team, job.status_digest = team, row[at]
    return membership


def _membership_or_none(request, slug: str) -> Membership | None:
    if not request.user.is_authenticated:
        return None
    return (
        Membership.objects.select_related("team").filter(team__slug=slug, user=request.user).first()
    )


def team_view(min_role: str = Role.VIEWER):
    """Resolve `team_slug` to the user's membership (404 if none); 403 if the role is too low."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, team_slug, *args, **kwargs):
            job_id = kwargs.get("job_id")
            reset = prefetched_user.set(None)
            try:
                membership = _read_member(request, team_slug, job_id)
                if not request.user.is_authenticated:  # Django's check of the session
                    return redirect_to_login(request.get_full_path())
            finally:
                prefetched_user.reset(reset)
            if membership is None or membership.user_id != request.user.pk:
                raise Http404("No such team")
            if not membership.at_least(min_role):
                raise PermissionDenied(f"This needs the {min_role} role or higher.")
            membership.user = request.user
            request.membership, request.team = membership, membership.team
            if request.session.get(CURRENT_TEAM_KEY) != membership.team.slug:
                # Written only when the team changes: a polled partial writes nothing.
                request.session[CURRENT_TEAM_KEY] = membership.team.slug
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def find_team_job(team, job_id) -> Job | None:
    try:
        return Job.objects.select_related("creator").filter(pk=job_id, team=team).first()
    except ValidationError:  # not a UUID
        return None


def team_job_or_404(request, job_id) -> Job:
    job = getattr(request, "prefetched_job", None)  # read with the membership (team_view)
    if job is None or str(job.pk) != str(job_id):
        job = find_team_job(request.team, job_id)
    if job is None:
        raise Http404("No such job")
    return job
