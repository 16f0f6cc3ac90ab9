"""The job state machine, shared by every provider.

queued → submitting → running → succeeded | failed | canceled | expired

Every move is one conditional UPDATE (`... WHERE state = <expected>`): the row count says
whether this caller won. A duplicated or late report (a webhook and a poll at once) therefore
cannot settle a job twice or move it backwards, and a terminal state never changes again.
"""

import logging
import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from studio.billing import ledger
from studio.models import Job, JobState
from studio.models.jobs import TERMINAL_STATES
from studio.outbound.events import record_job_event

S = JobState
log = logging.getLogger(__name__)
ALLOWED: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.SUBMITTING, S.CANCELED, S.FAILED, S.EXPIRED}),
    # Back to queued: a transient provider error before the provider took the job.
    S.SUBMITTING: frozenset({S.QUEUED, S.RUNNING, S.FAILED, S.CANCELED, S.EXPIRED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELED, S.EXPIRED}),
}
for _terminal in TERMINAL_STATES:
    ALLOWED[_terminal] = frozenset()

# The timestamp each state records when entered.
STAMP = {S.SUBMITTING: "submitting_at", S.RUNNING: "running_at"} | {
    t: "finished_at" for t in TERMINAL_STATES
}


class IllegalTransition(ValueError):
    pass


def transition(job: Job | str, source: str, target: str, **fields) -> bool:
    """Move a job from `source` to `target` if it is still in `source`; True if this call did it.

    `fields` are written in the same UPDATE. The in-memory `job` (when given) is updated to match.
    """
    if target not in ALLOWED[source]:
        raise IllegalTransition(f"a job cannot go from {source} to {target}")
    if target in STAMP:
        fields.setdefault(STAMP[target], timezone.now())
    if target in TERMINAL_STATES:
        fields.setdefault("next_poll_at", None)
    if target == S.SUCCEEDED:
        fields.setdefault("progress", 100)
    job_id = job.pk if isinstance(job, Job) else job
    # The state change, its settlement and its webhook events commit together or not at all.
    with transaction.atomic():
        won = Job.objects.filter(pk=job_id, state=source).update(state=target, **fields) == 1
        if won and target in TERMINAL_STATES:
            _settle(job_id, target, fields.get("error", ""))
        if won:
            record_job_event(job_id, target)
    if won and log.isEnabledFor(logging.INFO):
        _log_move(job, job_id, source, target)
    if won and isinstance(job, Job):
        job.state = target
        computed = [name for name, value in fields.items() if hasattr(value, "resolve_expression")]
        for name, value in fields.items():
            if name not in computed:
                setattr(job, name, value)
        if computed:  # F() expressions: read back what the database made of them
            job.refresh_from_db(fields=computed)
    return won


def _log_move(job: Job | str, job_id, source: str, target: str) -> None:
    """One line per move, naming the job, its team and its provider (as fields of their own in
    JSON logs). Read from the caller's Job when it holds them, never loading a deferred field;
    for a bare id, one primary-key read."""
    known = job.__dict__ if isinstance(job, Job) else {}
    team_id, provider = known.get("team_id"), known.get("provider")
    if team_id is None or provider is None:
        row = Job.objects.filter(pk=job_id).values_list("team_id", "provider").first()
        team_id, provider = row or (None, "")
    log.info(
        "job %s: %s → %s (team %s, provider %s)",
        job_id,
        source,
        target,
        team_id,
        provider,
        extra={
            "job": str(job_id),
            "team": team_id,
            "provider": provider,
            "from_state": str(source),
            "to_state": str(target),
        },
    )


class SettlementFailed(RuntimeError):
    """A terminal state could not settle its credits; the state change was rolled back."""


def _settle(job_id, target: str, error: str) -> None:
    """A terminal state settles the job's reservation: captured on success, released otherwise.
    Anything short of a settlement raises, which rolls the state change back with it."""
    try:
        if target == S.SUCCEEDED:
            settled = ledger.capture(job_id)
        else:
            settled = ledger.release(job_id, release_reason(target, error))
    except IntegrityError as violation:  # e.g. a cached figure would leave its allowed range
        raise SettlementFailed(f"job {job_id} could not settle: {violation}") from violation
    if not settled:  # this call won the state change, so nobody else can have settled it
        raise SettlementFailed(f"job {job_id} became {target} but had no open reservation")


# Said already by the refund line that shows the reason ("Refunded 5 credits to the team: ...").
_SAID_BY_THE_REFUND = re.compile(
    r"\s*Your credits (were|have been) (returned|released|refunded)\.?\s*$", re.IGNORECASE
)
_STATE_PREFIX = re.compile(r"^(\w+): (.+)$", re.DOTALL)


def tidy_reason(reason: str) -> str:
    """A release reason as one clause: without a closing full stop, without "your credits were
    returned" (the refund line says so), and without a state prefix the rest repeats
    ("Canceled: Canceled before it started"). Also tidies reasons written before this rule."""
    reason = _SAID_BY_THE_REFUND.sub("", (reason or "").strip()).strip().rstrip(".").strip()
    prefixed = _STATE_PREFIX.match(reason)
    if prefixed and re.search(rf"\b{re.escape(prefixed[1])}\b", prefixed[2], re.IGNORECASE):
        reason = prefixed[2]
    return reason


def release_reason(target: str, error: str = "") -> str:
    """Why a job's credits went back, for the ledger and the job's refund line: the state, then
    the error where the error does not say the state already."""
    label = S(target).label
    reason = tidy_reason(error)
    return tidy_reason(f"{label}: {reason}") if reason else label


def spends_money(job: Job) -> bool:
    """Whether a job the provider has taken is already being paid for (every remote provider).
    Our own engine spends nothing, so its renders can be stopped at any time."""
    from studio.providers import PROVIDERS

    provider = PROVIDERS.get(job.provider)
    return provider is None or provider.remote


def cancellable(job: Job) -> bool:
    """Whether cancelling is still possible: before any provider took the job, or at any time
    while our own engine has it."""
    if job.state == S.QUEUED:
        return True
    return job.state in (S.SUBMITTING, S.RUNNING) and not spends_money(job)


def may_cancel(membership, job: Job) -> bool:
    """Whoever submitted the job, or an admin or owner (a viewer never)."""
    if membership is None or not membership.can_submit:
        return False
    return job.creator_id == membership.user_id or membership.can_manage


def cancel(job: Job) -> bool:
    """Cancel a job no provider has taken yet, or one our own engine is rendering (its renderer
    sees the state change within half a second and stops, keeping nothing). Remote providers'
    jobs, once sent, stay: they are paid for already. True if this call canceled it."""
    if transition(job, S.QUEUED, S.CANCELED, error="Canceled before it started."):
        return True
    if spends_money(job):
        return False
    # In lifecycle order, so a job that moves on between two attempts is caught by the next one.
    return any(
        transition(job, source, S.CANCELED, error="Canceled while it was being made.")
        for source in (S.SUBMITTING, S.RUNNING)
    )


def expire_overdue(now=None) -> int:
    """Expire active jobs past their provider's deadline; returns how many expired."""
    now = now or timezone.now()
    expired = 0
    # As Job rows with only what the move and its log line need (no query per job to log it).
    # Not a job whose video is made and waiting to be copied: the provider has charged for it, and
    # the copy either succeeds or fails the job itself once the provider's copy is gone.
    overdue = (
        Job.objects.active()
        .filter(deadline_at__lt=now, output_ref="")
        .only("state", "team", "provider")
    )
    for job in overdue:
        job_id, state = job.pk, job.state
        try:
            expired += transition(
                job,
                state,
                S.EXPIRED,
                error="The video was not ready in time, so the job expired.",
            )
        except SettlementFailed:
            log.exception("could not expire job %s", job_id)
    return expired


def claim_many(job_ids, source: str, target: str, **fields) -> int:
    """Move several jobs at once (the engine's claims); only non-terminal targets."""
    if target not in ALLOWED[source] or target in TERMINAL_STATES:
        raise IllegalTransition(f"a claim cannot go from {source} to {target}")
    if target in STAMP:
        fields.setdefault(STAMP[target], timezone.now())
    return Job.objects.filter(pk__in=list(job_ids), state=source).update(state=target, **fields)
