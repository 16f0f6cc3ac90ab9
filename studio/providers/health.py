"""Each provider's health, for the staff page: is it usable, how loaded, how often it fails, what
went wrong last, which accounts a 429 paused, and the incidents to reconcile with its bill.

A constant number of queries whatever the number of jobs or providers: one aggregate over jobs
grouped by provider, one for the newest failed jobs' errors, one for accounts, one for incidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Q
from django.utils import timezone

from studio.jobs.engine import WAITING_FOR_SLOT
from studio.models import IncidentKind, Job, JobState, ProviderAccount, ProviderIncident
from studio.providers import PROVIDERS

S = JobState
ERROR_WINDOW = timedelta(hours=1)
INCIDENT_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class PausedAccount:
    fingerprint: str
    until: datetime


@dataclass(frozen=True)
class Incident:
    provider_label: str
    job_id: str
    team: str
    kind: str
    kind_label: str
    detail: str
    created_at: datetime


@dataclass
class ProviderHealth:
    key: str
    label: str
    unavailable_reason: str = ""
    queued: int = 0
    submitting: int = 0
    running: int = 0
    waiting_for_slot: int = 0
    last_success_at: datetime | None = None
    succeeded_last_hour: int = 0
    failed_last_hour: int = 0
    last_error: str = ""
    last_error_at: datetime | None = None
    paused_accounts: list[PausedAccount] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return not self.unavailable_reason

    @property
    def error_rate(self) -> float | None:
        """Failed ÷ (succeeded + failed) among jobs finished in the last hour; None with none."""
        finished = self.succeeded_last_hour + self.failed_last_hour
        return self.failed_last_hour / finished if finished else None

    @property
    def error_percent(self) -> str:
        rate = self.error_rate
        return "—" if rate is None else f"{rate * 100:.0f}%"

    def _note_error(self, message: str, at: datetime | None) -> None:
        if at is not None and (self.last_error_at is None or at > self.last_error_at):
            self.last_error, self.last_error_at = message, at


def provider_health(now: datetime | None = None) -> list[ProviderHealth]:
    now = now or timezone.now()
    health = {
        key: ProviderHealth(key, p.label, p.unavailable_reason()) for key, p in PROVIDERS.items()
    }
    _job_figures(health, now)
    _accounts(health, now)
    _incidents(health, now)
    return list(health.values())


def all_incidents(health: list[ProviderHealth]) -> list[Incident]:
    """Every provider's incidents in one list, newest first."""
    incidents = [incident for figures in health for incident in figures.incidents]
    return sorted(incidents, key=lambda incident: incident.created_at, reverse=True)


def _job_figures(health: dict[str, ProviderHealth], now: datetime) -> None:
    recent = Q(finished_at__gte=now - ERROR_WINDOW)
    rows = (
        Job.objects.filter(provider__in=health)
        .order_by()
        .values("provider")
        .annotate(
            queued=Count("pk", filter=Q(state=S.QUEUED)),
            submitting=Count("pk", filter=Q(state=S.SUBMITTING)),
            running=Count("pk", filter=Q(state=S.RUNNING)),
            waiting_for_slot=Count("pk", filter=Q(state=S.QUEUED, status_note=WAITING_FOR_SLOT)),
            succeeded_last_hour=Count("pk", filter=Q(state=S.SUCCEEDED) & recent),
            failed_last_hour=Count("pk", filter=Q(state=S.FAILED) & recent),
            last_success_at=Max("finished_at", filter=Q(state=S.SUCCEEDED)),
            last_failure_at=Max("finished_at", filter=Q(state=S.FAILED)),
        )
    )
    last_failures = Q()
    for row in rows:
        figures = health[row.pop("provider")]
        failed_at = row.pop("last_failure_at")
        for name, value in row.items():
            setattr(figures, name, value)
        if failed_at is not None:
            last_failures |= Q(provider=figures.key, finished_at=failed_at)
    if last_failures:  # the newest failed job of each provider, all in one query
        failed = Job.objects.filter(last_failures, state=S.FAILED).order_by()
        for provider, error, at in failed.values_list("provider", "error", "finished_at"):
            health[provider]._note_error(error or "Failed without a message.", at)


def _accounts(health: dict[str, ProviderHealth], now: datetime) -> None:
    accounts = ProviderAccount.objects.filter(provider__in=health).filter(
        Q(paused_until__gt=now) | Q(last_error_at__isnull=False)
    )
    for account in accounts.order_by("provider", "paused_until", "fingerprint"):
        figures = health[account.provider]
        figures._note_error(account.last_error, account.last_error_at)
        if account.paused_until and account.paused_until > now:
            figures.paused_accounts.append(PausedAccount(account.fingerprint, account.paused_until))


def _incidents(health: dict[str, ProviderHealth], now: datetime) -> None:
    incidents = (
        ProviderIncident.objects.filter(
            provider__in=health,
            kind__in=IncidentKind.values,
            created_at__gte=now - INCIDENT_WINDOW,
        )
        .order_by("-created_at", "-pk")
        .values_list("provider", "job_id", "job__team__name", "kind", "detail", "created_at")
    )
    for provider, job_id, team, kind, detail, created_at in incidents:
        label = IncidentKind(kind).label
        health[provider].incidents.append(
            Incident(health[provider].label, str(job_id), team, kind, label, detail, created_at)
        )
