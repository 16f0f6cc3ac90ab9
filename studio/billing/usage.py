"""The ledger as members read it, and monthly usage per member or provider, with a server-side
SVG chart of it. Read-only: nothing here moves credits."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from html import escape

from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    DateField,
    Exists,
    F,
    OuterRef,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from studio.billing.budgets import period_start
from studio.models import EntryKind, LedgerEntry, Team
from studio.models.billing import EFFECTS
from studio.providers import PROVIDERS, label_of

K = EntryKind

# The word a member reads beside each kind of entry.
EFFECT_WORDS = {
    K.GRANT: "added",
    K.ADJUSTMENT: "adjusted",
    K.RESERVE: "held for the job",
    K.CAPTURE: "spent",
    K.RELEASE: "refunded",
}


def _signed(factor_of) -> Case:
    # Built from the model's EFFECTS so the page can never disagree with the cached account.
    whens = [When(kind=kind, then=F("amount") * factor_of(kind)) for kind in EFFECTS]
    return Case(*whens, default=Value(0), output_field=BigIntegerField())


def ledger_entries(team: Team) -> QuerySet:
    """The team's ledger, newest first. Each entry carries `balance_change` and
    `available_change`: summed down the page they give the balance and the available credits
    (a reservation only moves available, its capture only the balance), and `effect`."""
    return (
        LedgerEntry.objects.filter(team=team)
        .select_related("member", "actor")
        .annotate(
            balance_change=_signed(lambda kind: EFFECTS[kind][0]),
            available_change=_signed(lambda kind: EFFECTS[kind][0] - EFFECTS[kind][1]),
            effect=Case(
                *[When(kind=kind, then=Value(word)) for kind, word in EFFECT_WORDS.items()],
                output_field=CharField(),
            ),
        )
        .order_by("-created_at", "-id")
    )


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_ledger(
    entries: QuerySet,
    *,
    member: int | None = None,
    provider: str = "",
    kind: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet:
    """Narrow ledger entries; the dates are whole days in the site's time zone, both included."""
    if member:
        entries = entries.filter(member_id=member)
    if provider:
        entries = entries.filter(provider=provider)
    if kind:
        entries = entries.filter(kind=kind)
    # Bounds on created_at itself rather than created_at__date, so the index still serves.
    if date_from:
        entries = entries.filter(created_at__gte=_day_start(date_from))
    if date_to:
        entries = entries.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    return entries


def ledger_providers(team: Team) -> list[tuple[str, str]]:
    """Providers to filter by: today's registry, plus any the ledger still names."""
    choices = {p.key: p.label for p in PROVIDERS.values()}
    used = (
        LedgerEntry.objects.filter(team=team)
        .exclude(provider="")
        .order_by()
        .values_list("provider", flat=True)
        .distinct()
    )
    for key in used:
        choices.setdefault(key, key)
    return sorted(choices.items(), key=lambda item: item[1].lower())


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
]


def _cell(text: str) -> str:
    # A spreadsheet would run a cell starting like a formula; the quote makes it plain text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(entries: QuerySet) -> Iterator[list]:
    """The header, then one row per entry, read in chunks so a long ledger streams."""
    yield CSV_HEADER
    for e in entries.iterator(chunk_size=500):
        yield [
            timezone.localtime(e.created_at).isoformat(),
            e.kind,
            e.amount,
            e.balance_change,
            e.available_change,
            str(e.job_id or ""),
            _cell(e.member.email if e.member else ""),
            _cell(e.provider),
            _cell(e.reason),
            _cell(e.actor.email if e.actor else ""),
        ]


# --- Monthly usage ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Series:
    """One member's or provider's credits, a figure per month (oldest first)."""

    key: str
    label: str
    spent: tuple[int, ...]
    held: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.spent) + sum(self.held)


@dataclass(frozen=True)
class Usage:
    by: str
    months: tuple[date, ...]  # the first day of each month, oldest first
    series: tuple[Series, ...]  # biggest first

    def spent(self, key) -> dict[date, int]:
        return dict(zip(self.months, self._find(key).spent, strict=True))

    def held(self, key) -> dict[date, int]:
        return dict(zip(self.months, self._find(key).held, strict=True))

    def _find(self, key) -> Series:
        return next(s for s in self.series if s.key == str(key))

    def month_totals(self) -> list[int]:
        return [sum(s.spent[i] + s.held[i] for s in self.series) for i in range(len(self.months))]

    def rows(self) -> list[tuple[date, str, int, int]]:
        """(month, label, spent, held) for each month and series with anything in it."""
        return [
            (month, s.label, s.spent[i], s.held[i])
            for i, month in enumerate(self.months)
            for s in self.series
            if s.spent[i] or s.held[i]
        ]


def month_starts(months: int, now: datetime | None = None) -> list[date]:
    """The first days of the last `months` calendar months, this one included, oldest first."""
    current = period_start(now).date()
    starts = []
    year, month = current.year, current.month
    for _ in range(months):
        starts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


GROUPS = {"member": ("member_id", "member__email"), "provider": ("provider",)}


def monthly_usage(team: Team, months: int = 6, by: str = "member", now=None) -> Usage:
    """Per month and per member (whose job) or provider: credits spent, i.e. captured that month,
    and credits held, i.e. reserved that month for jobs not settled yet."""
    if by not in GROUPS:
        raise ValueError(f"usage is by member or by provider, not {by!r}")
    if months < 1:
        raise ValueError("usage needs at least one month")
    starts = month_starts(months, now)
    recent = LedgerEntry.objects.filter(team=team, created_at__gte=_day_start(starts[0]))
    settled = LedgerEntry.objects.filter(job=OuterRef("job"), kind__in=[K.CAPTURE, K.RELEASE])
    figures = {
        "spent": recent.filter(kind=K.CAPTURE),
        "held": recent.filter(kind=K.RESERVE).exclude(Exists(settled)),
    }
    index = {month: i for i, month in enumerate(starts)}
    found: dict[str, dict] = {}
    for figure, entries in figures.items():
        totals = (
            entries.annotate(month=TruncMonth("created_at", output_field=DateField()))
            .order_by()
            .values("month", *GROUPS[by])
            .annotate(total=Sum("amount"))
        )
        for row in totals:
            if row["month"] not in index:  # dated after `now`, when `now` is in the past
                continue
            key, label = _key_and_label(by, row)
            series = found.setdefault(
                key, {"label": label, "spent": [0] * months, "held": [0] * months}
            )
            series[figure][index[row["month"]]] += row["total"]
    series = [
        Series(key, s["label"], tuple(s["spent"]), tuple(s["held"])) for key, s in found.items()
    ]
    series.sort(key=lambda s: (-s.total, s.label.lower()))
    return Usage(by, tuple(starts), tuple(series))


def _key_and_label(by: str, row: dict) -> tuple[str, str]:
    if by == "member":
        if row["member_id"] is None:  # the user was deleted; their credits still count
            return "", "Former member"
        return str(row["member_id"]), row["member__email"]
    return row["provider"], label_of(row["provider"]) or "Unknown"


# --- The chart --------------------------------------------------------------------------------
PALETTE = ("#3454d1", "#1f7a4d", "#c2410c", "#7c3aed", "#0e7490", "#b42318", "#a16207", "#475569")
# Sized for half the page's width, so the 12px text shows at about 12px beside a second chart.
WIDTH, LEFT, RIGHT, TOP, PLOT_HEIGHT, AXIS_HEIGHT = 480, 44, 12, 20, 160, 28
LEGEND_ROW, LEGEND_COLUMNS, LABEL_CHARS = 20, 2, 26


def _fold(series: tuple[Series, ...]) -> list[Series]:
    # More series than colours would repeat colours, and a legend of 30 people helps nobody.
    if len(series) <= len(PALETTE):
        return list(series)
    kept, rest = list(series[: len(PALETTE) - 1]), series[len(PALETTE) - 1 :]
    months = range(len(rest[0].spent))
    return kept + [
        Series(
            "others",
            f"{len(rest)} others",
            tuple(sum(s.spent[i] for s in rest) for i in months),
            tuple(sum(s.held[i] for s in rest) for i in months),
        )
    ]


def _step(top: int) -> int:
    """A round gridline step (1, 2 or 5 times a power of ten) for about four lines."""
    rough, power = max(top / 4, 1), 1
    while True:
        for base in (1, 2, 5):
            if base * power >= rough:
                return base * power
        power *= 10


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _month_name(month: date) -> str:
    return month.strftime("%b %Y")


def usage_svg(usage: Usage, *, title: str, id_prefix: str = "usage") -> SafeString:
    """Stacked bars, one per month: a segment per member or provider, solid for spent and pale
    for held, with a legend. Every piece of text goes through `escape`, which is what makes the
    result safe to put in a page as it is."""
    series = _fold(usage.series)
    totals = usage.month_totals()
    step = _step(max(totals, default=0))
    top = step * max(1, -(-max(totals, default=0) // step))  # ceiling, and at least one step
    legend_rows = -(-(len(series) + 1) // LEGEND_COLUMNS)
    height = TOP + PLOT_HEIGHT + AXIS_HEIGHT + legend_rows * LEGEND_ROW + 8
    plot_width = WIDTH - LEFT - RIGHT
    slot = plot_width / len(usage.months)
    bar = min(48.0, slot * 0.6)
    bottom = TOP + PLOT_HEIGHT

    def y(value: float) -> float:
        return bottom - value * PLOT_HEIGHT / top

    first, last = _month_name(usage.months[0]), _month_name(usage.months[-1])
    spent = sum(sum(s.spent) for s in usage.series)
    held = sum(sum(s.held) for s in usage.series)
    summary = (
        f"Credits by {usage.by} from {first} to {last}: {spent} spent and {held} held. "
        + "; ".join(
            f"{_month_name(month)}: {total}"
            for month, total in zip(usage.months, totals, strict=True)
        )
        + "."
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'class="credits-chart" role="img" aria-labelledby="{id_prefix}-title {id_prefix}-desc" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{id_prefix}-title">{escape(title)}</title>',
        f'<desc id="{id_prefix}-desc">{escape(summary)}</desc>',
    ]
    for value in range(0, top + 1, step):
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'stroke="#dde2ea"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#5f6b7a">'
            f"{value}</text>"
        )
    for i, month in enumerate(usage.months):
        x = LEFT + slot * i + (slot - bar) / 2
        level = 0
        for colour, s in zip(PALETTE, series, strict=False):
            for figure, amount, paint in (
                ("spent", s.spent[i], f'fill="{colour}"'),
                ("held", s.held[i], f'fill="{colour}" fill-opacity="0.3" stroke="{colour}"'),
            ):
                if not amount:
                    continue
                out.append(
                    f'<rect x="{x:.1f}" y="{y(level + amount):.1f}" width="{bar:.1f}" '
                    f'height="{amount * PLOT_HEIGHT / top:.1f}" {paint}>'
                    f"<title>{escape(s.label)}, {_month_name(month)}: {amount} {figure}</title>"
                    f"</rect>"
                )
                level += amount
        centre = LEFT + slot * i + slot / 2
        if totals[i]:
            out.append(
                f'<text x="{centre:.1f}" y="{y(totals[i]) - 4:.1f}" text-anchor="middle">'
                f"{totals[i]}</text>"
            )
        out.append(
            f'<text x="{centre:.1f}" y="{bottom + 18}" text-anchor="middle" fill="#5f6b7a">'
            f"{_month_name(month)}</text>"
        )
    if not series:
        out.append(
            f'<text x="{LEFT + plot_width / 2:.1f}" y="{TOP + PLOT_HEIGHT / 2:.1f}" '
            f'text-anchor="middle" fill="#5f6b7a">No credits used in these months</text>'
        )
    column = plot_width / LEGEND_COLUMNS
    keys = [(s.label, f'fill="{c}"') for c, s in zip(PALETTE, series, strict=False)]
    keys.append(("Pale: still held", 'fill="#5f6b7a" fill-opacity="0.3"'))
    for n, (label, paint) in enumerate(keys):
        lx = LEFT + column * (n % LEGEND_COLUMNS)
        ly = bottom + AXIS_HEIGHT + LEGEND_ROW * (n // LEGEND_COLUMNS)
        hover = f"<title>{escape(label)}</title>" if _short(label) != label else ""
        out.append(
            f'<g><rect x="{lx:.1f}" y="{ly}" width="12" height="12" {paint}/>'
            f'<text x="{lx + 18:.1f}" y="{ly + 11}">{escape(_short(label))}{hover}</text></g>'
        )
    out.append("</svg>")
    return mark_safe("".join(out))  # every interpolated text was escaped above
