"""Reconciliation for staff: per provider and day, the credits we captured beside what the provider
reported it took (AKOOL's `deduction_credit`, the AI/ML API's `credits_used`, kept on the job as
`provider_credits_used`), and the jobs where the two differ. Read-only: nothing here moves credits.

Units: our figures are our credits, from our price book; a provider's figures are its own credits.
For AKOOL they are the same unit (our prices mirror its table); for the AI/ML API they are its
credits against our staff-set price. Either way a difference is worth a look, job by job.

A job belongs to the day it finished on (`finished_at`) in the server's time zone. A provider
"reports" when its adapter says its answers carry what it charged (`Provider.reports_cost`): for
such a provider a delivered job without a figure is a difference; for the others the page says
"not reported".
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    FilteredRelation,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from studio.billing.ledger_csv import spreadsheet_text
from studio.models import EntryKind, Job, JobState, PriceRule
from studio.providers import PROVIDERS, label_of

DEFAULT_DAYS = 30
# Provider figures are floats from JSON; below this a difference is rounding, not money.
TOLERANCE = 1e-6

# Why a job is on the list of differences.
MISMATCH, UNREPORTED, REFUNDED = "mismatch", "unreported", "refunded"
ISSUE_WORDS = {
    MISMATCH: "the figures differ",
    UNREPORTED: "delivered, but the provider reported nothing",
    REFUNDED: "refunded to the team, but the provider reported a charge",
}


@dataclass(frozen=True)
class DayRow:
    """One provider's day. `reported` and `difference` are None when the provider reports nothing;
    `difference` is the provider's figure less ours."""

    provider: str
    label: str
    day: date
    jobs_succeeded: int
    captured: int
    reported: float | None
    jobs_reported: int
    difference: float | None
    jobs_differing: int

    @property
    def reports(self) -> bool:
        return self.reported is not None


@dataclass(frozen=True)
class ProviderDays:
    """A provider's days, newest first, and their totals over the range."""

    provider: str
    label: str
    days: tuple[DayRow, ...]

    @property
    def reports(self) -> bool:
        return self.days[0].reports

    def _total(self, name):
        values = [getattr(row, name) for row in self.days]
        return None if None in values else _round(sum(values))

    @property
    def jobs_succeeded(self) -> int:
        return self._total("jobs_succeeded")

    @property
    def captured(self) -> int:
        return self._total("captured")

    @property
    def reported(self) -> float | None:
        return self._total("reported")

    @property
    def jobs_reported(self) -> int:
        return self._total("jobs_reported")

    @property
    def difference(self) -> float | None:
        return self._total("difference")

    @property
    def jobs_differing(self) -> int:
        return self._total("jobs_differing")


@dataclass(frozen=True)
class JobDifference:
    job_id: str
    provider: str
    day: date
    finished_at: datetime
    team: str
    team_slug: str
    state: str
    captured: int
    reported: float | None
    difference: float
    issue: str

    @property
    def issue_words(self) -> str:
        return ISSUE_WORDS[self.issue]


def _round(value):
    # Sums of floats pick up noise (0.1 + 0.2); six places keep every real fraction of a credit.
    return round(value, 6) if isinstance(value, float) else value


def provider_choices() -> list[tuple[str, str]]:
    """Every provider a job can name: a job is only made at a price, so the price book (every
    version) lists them all, beside the registered ones."""
    keys = set(PROVIDERS) | set(
        PriceRule.objects.order_by().values_list("provider", flat=True).distinct()
    )
    return sorted(((key, label_of(key)) for key in keys), key=lambda c: c[1].lower())


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today (in the server's time zone) included."""
    end = today or timezone.localdate(timezone=timezone.get_default_timezone())
    return end - timedelta(days=DEFAULT_DAYS - 1), end


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_default_timezone())


def reporting_providers() -> set[str]:
    """Providers whose answers say what they charged (declared by their adapters)."""
    return {key for key, provider in PROVIDERS.items() if provider.reports_cost}


def _jobs(provider: str | None, start: date, end: date) -> QuerySet:
    """Jobs that finished in [start, end] and were captured or reported, each with `captured`
    (our capture, 0 without one), `day` and `issue` (why it differs, "" if it does not)."""
    jobs = Job.objects.filter(
        Q(state=JobState.SUCCEEDED) | Q(provider_credits_used__isnull=False),
        finished_at__gte=_day_start(start),
        finished_at__lt=_day_start(end + timedelta(days=1)),
    )
    if provider:
        jobs = jobs.filter(provider=provider)
    return (
        jobs.order_by()
        # At most one capture per job (a database constraint), so the join multiplies nothing.
        .alias(capture=FilteredRelation("ledger", condition=Q(ledger__kind=EntryKind.CAPTURE)))
        .alias(captured=Coalesce("capture__amount", 0))
        .alias(
            issue=Case(
                When(
                    Q(state=JobState.SUCCEEDED, provider_credits_used__isnull=True),
                    then=Value(UNREPORTED),
                ),
                When(
                    Q(state=JobState.SUCCEEDED)
                    & (
                        Q(provider_credits_used__gt=F("captured") + TOLERANCE)
                        | Q(provider_credits_used__lt=F("captured") - TOLERANCE)
                    ),
                    then=Value(MISMATCH),
                ),
                When(
                    ~Q(state=JobState.SUCCEEDED) & Q(provider_credits_used__gt=TOLERANCE),
                    then=Value(REFUNDED),
                ),
                default=Value(""),
                output_field=CharField(),
            ),
        )
        .annotate(day=TruncDate("finished_at", tzinfo=timezone.get_default_timezone()))
    )


def daily(provider: str | None = None, *, start: date, end: date) -> list[DayRow]:
    """Per provider and day in [start, end]: jobs delivered, credits we captured, what the
    provider reported, and how many jobs differ. Two queries, however many jobs and days."""
    reporting = reporting_providers()
    days = (
        _jobs(provider, start, end)
        .values("provider", "day")
        .annotate(
            jobs_succeeded=Count("pk", filter=Q(state=JobState.SUCCEEDED)),
            captured_sum=Sum("captured"),
            reported_sum=Sum("provider_credits_used"),
            jobs_reported=Count("provider_credits_used"),
            differing=Count("pk", filter=Q(issue__in=[MISMATCH, REFUNDED])),
            unreported=Count("pk", filter=Q(issue=UNREPORTED)),
        )
        .order_by("provider", "-day")
    )
    rows = []
    for d in days:
        reports = d["provider"] in reporting
        reported = _round(d["reported_sum"] or 0.0) if reports else None
        captured = d["captured_sum"] or 0
        rows.append(
            DayRow(
                provider=d["provider"],
                label=label_of(d["provider"]),
                day=d["day"],
                jobs_succeeded=d["jobs_succeeded"],
                captured=captured,
                reported=reported,
                jobs_reported=d["jobs_reported"],
                difference=_round(reported - captured) if reports else None,
                jobs_differing=d["differing"] + (d["unreported"] if reports else 0),
            )
        )
    return rows


def by_provider(rows: list[DayRow]) -> list[ProviderDays]:
    """Day rows (as `daily` orders them) grouped per provider, providers by label."""
    groups: dict[str, list[DayRow]] = {}
    for row in rows:
        groups.setdefault(row.provider, []).append(row)
    found = [ProviderDays(key, days[0].label, tuple(days)) for key, days in groups.items()]
    return sorted(found, key=lambda group: group.label.lower())


def differing_jobs(
    provider: str | None, start: date, end: date | None = None
) -> Iterator[JobDifference]:
    """The jobs of `provider` (any if None) that finished from `start` to `end` (default: that one
    day) whose figures differ: reported and captured disagree, a reporting provider reported
    nothing for a delivered job, or the provider reported a charge for a job we refunded. Oldest
    first, read in chunks so a long list streams. Two queries."""
    end = end or start
    reporting = reporting_providers()
    jobs = (
        _jobs(provider, start, end)
        .filter(Q(issue__in=[MISMATCH, REFUNDED]) | Q(issue=UNREPORTED, provider__in=reporting))
        .annotate(
            job_captured=F("captured"),
            job_issue=F("issue"),
            team_name=F("team__name"),
            team_slug=F("team__slug"),
        )
        .values(
            "pk",
            "provider",
            "day",
            "finished_at",
            "team_name",
            "team_slug",
            "state",
            "job_captured",
            "provider_credits_used",
            "job_issue",
        )
        .order_by("finished_at", "pk")
    )
    for j in jobs.iterator(chunk_size=500):
        reported = j["provider_credits_used"]
        yield JobDifference(
            job_id=str(j["pk"]),
            provider=j["provider"],
            day=j["day"],
            finished_at=j["finished_at"],
            team=j["team_name"],
            team_slug=j["team_slug"],
            state=j["state"],
            captured=j["job_captured"],
            reported=reported,
            difference=_round((reported or 0.0) - j["job_captured"]),
            issue=j["job_issue"],
        )


# --- CSV ------------------------------------------------------------------------------------
JOB_CSV_HEADER = [
    "day",
    "provider",
    "job",
    "team",
    "state",
    "our credits captured",
    "provider credits reported",
    "difference (provider - ours)",
    "why",
]
DAY_CSV_HEADER = [
    "day",
    "provider",
    "jobs delivered",
    "our credits captured",
    "provider credits reported",
    "jobs reported",
    "difference (provider - ours)",
    "jobs differing",
]
NOT_REPORTED = "not reported"


def job_csv_rows(jobs: Iterator[JobDifference]) -> Iterator[list]:
    """The header, then a row per differing job."""
    yield JOB_CSV_HEADER
    for j in jobs:
        yield [
            j.day.isoformat(),
            spreadsheet_text(j.provider),
            j.job_id,
            spreadsheet_text(j.team),
            j.state,
            j.captured,
            NOT_REPORTED if j.reported is None else j.reported,
            j.difference,
            j.issue_words,
        ]


def day_csv_rows(rows: list[DayRow]) -> Iterator[list]:
    yield DAY_CSV_HEADER
    for r in rows:
        yield [
            r.day.isoformat(),
            spreadsheet_text(r.provider),
            r.jobs_succeeded,
            r.captured,
            NOT_REPORTED if r.reported is None else r.reported,
            r.jobs_reported,
            "" if r.difference is None else r.difference,
            r.jobs_differing,
        ]
