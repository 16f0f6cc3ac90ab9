"""The ledger as members read it, and monthly usage per member or provider, with a server-side
SVG chart of it. Read-only: nothing here moves credits."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from html import escape

from django.core.cache import caches
from django.db import connection
from django.db.models import (
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    DateField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.expressions import RowRange
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from studio.billing.budgets import commitments, next_period_start, period_start
from studio.models import CreditAccount, EntryKind, LedgerEntry, Team, User
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
            balance_change=signed_effect("balance"),
            available_change=signed_effect("available"),
            effect=Case(
                *[When(kind=kind, then=Value(word)) for kind, word in EFFECT_WORDS.items()],
                output_field=CharField(),
            ),
        )
        .order_by("-created_at", "-id")
    )


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def ledger_filter(
    *,
    member: int | None = None,
    provider: str = "",
    kind: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> Q:
    """The condition of the ledger's filters; the dates are whole days in the site's time zone,
    both included."""
    condition = Q()
    if member:
        condition &= Q(member_id=member)
    if provider:
        condition &= Q(provider=provider)
    if kind:
        condition &= Q(kind=kind)
    # Bounds on created_at itself rather than created_at__date, so the index still serves.
    if date_from:
        condition &= Q(created_at__gte=day_start(date_from))
    if date_to:
        condition &= Q(created_at__lt=day_start(date_to + timedelta(days=1)))
    return condition


def filter_ledger(entries: QuerySet, **filters) -> QuerySet:
    """Narrow ledger entries by `ledger_filter`."""
    return entries.filter(ledger_filter(**filters))


def ledger_version(team: Team) -> int:
    """How many entries the team's ledger holds. Entries are only ever added, so the count names
    the ledger's state, and figures derived from the rows can be cached under it. Read it before
    the figures it names: a figure read first could miss an entry the count then includes."""
    return LedgerEntry.objects.filter(team=team).count()


# A version names the rows exactly, so this only bounds how long an unused figure stays; and
# each process may keep its own copy (the "local" cache: no query, no write on a page view).
DERIVED_SECONDS = 3600
DERIVED_CACHE = "local"


def _derived(team: Team, version: int | None, what: str, compute):
    """compute(), or what it gave for this version of the team's ledger (None: no cache)."""
    if version is None:
        return compute()
    key = f"ledger:{team.pk}:{team.slug}:{version}:{what}"
    cache = caches[DERIVED_CACHE]
    found = cache.get(key)
    if found is None:
        found = compute()
        cache.set(key, found, DERIVED_SECONDS)
    return found


def ledger_providers(team: Team, version: int | None = None) -> list[tuple[str, str]]:
    """Providers to filter by: today's registry, plus any the ledger still names."""
    choices = {p.key: p.label for p in PROVIDERS.values()}

    def used() -> list[str]:
        rows = LedgerEntry.objects.filter(team=team).exclude(provider="").order_by()
        return list(rows.values_list("provider", flat=True).distinct())

    for key in _derived(team, version, "providers", used):
        choices.setdefault(key, key)
    return sorted(choices.items(), key=lambda item: item[1].lower())


# --- Running figures ----------------------------------------------------------------------------
# The balance and available credits just after an entry are the team's, whatever filter listed
# the entry: today's figures (the cached account, which moves in every entry's transaction) less
# every change newer than it. A window sums the changes from the newest entry down, so a page reads
# only the entries from its oldest row on, and never brings the ledger into Python.
NEWEST_FIRST = (F("created_at").desc(), F("id").desc())


def _balance_effect(kind) -> int:
    return EFFECTS[kind][0]


def _available_effect(kind) -> int:
    return EFFECTS[kind][0] - EFFECTS[kind][1]


def signed_effect(figure: str) -> Case:
    """An entry's change to the team's "balance" or "available" credits."""
    return _signed(_balance_effect if figure == "balance" else _available_effect)


def running_sql(
    team: Team, listed: list[int] | Q, columns: dict[str, object], since=None
) -> tuple[str, list]:
    """SQL giving `columns` of the listed entries (their ids, or the filters' condition), newest
    first, then the team's balance and available after each.

    `since`: a datetime or an entry no listed entry is older than, which bounds the window."""
    window = LedgerEntry.objects.filter(team=team)
    if isinstance(since, LedgerEntry):
        window = window.filter(
            Q(created_at__gt=since.created_at) | Q(created_at=since.created_at, id__gte=since.pk)
        )
    elif since is not None:
        window = window.filter(created_at__gte=since)
    account = CreditAccount.objects.filter(team=team)
    figures = {}
    for name, effect in (("balance", _balance_effect), ("available", _available_effect)):
        figures[f"r_{name}"] = _signed(effect)
        figures[f"r_{name}_newer"] = Window(
            Sum(_signed(effect)), order_by=NEWEST_FIRST, frame=RowRange(start=None, end=0)
        )
    figures["r_balance_now"] = Subquery(account.values("balance")[:1])
    figures["r_available_now"] = Subquery(
        account.annotate(now=F("balance") - F("held")).values("now")[:1]
    )
    # A column beside the window rather than a filter of its rows: hidden rows still count.
    condition = (listed or Q(pk__isnull=False)) if isinstance(listed, Q) else Q(pk__in=listed)
    figures["r_listed"] = ExpressionWrapper(condition, output_field=BooleanField())
    names = {name: f"c_{name}" for name in ("id", "created_at", *columns)}
    window = (
        window.order_by()
        .annotate(c_id=F("id"), c_created_at=F("created_at"))
        .annotate(**{names[name]: value for name, value in columns.items()}, **figures)
        .values(*names.values(), *figures)
    )
    window_sql, window_params = window.query.sql_with_params()
    shown = ", ".join(f"w.{alias}" for alias in names.values())
    sql = (
        f"SELECT {shown}, "
        "w.r_balance_now - w.r_balance_newer + w.r_balance AS balance_after, "
        "w.r_available_now - w.r_available_newer + w.r_available AS available_after "
        f"FROM ({window_sql}) w WHERE w.r_listed "
        "ORDER BY w.c_created_at DESC, w.c_id DESC"
    )
    return sql, list(window_params)


def add_running_figures(team: Team, entries: list[LedgerEntry]) -> None:
    """Set `balance_after` and `available_after` on each of a page of entries, in one query."""
    if not entries:
        return
    oldest = min(entries, key=lambda e: (e.created_at, e.pk))
    sql, params = running_sql(team, [e.pk for e in entries], {}, since=oldest)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        after = {row[0]: row[2:] for row in cursor.fetchall()}
    for entry in entries:
        entry.balance_after, entry.available_after = after[entry.pk]


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


GROUPS = ("member", "provider")


def _monthly_rows(team: Team, starts: list[date]) -> list[dict]:
    """This month's spending (`budgets.commitments`, one definition everywhere) for each month
    in `starts`, member and provider: one query over the team's reservations of those months."""
    until = next_period_start(day_start(starts[-1]))
    # Refunds are already out, so a reservation with a settlement is a captured one. A join, not
    # a subquery per row: cheap enough that PostgreSQL does not stop to compile it (JIT).
    return list(
        commitments(since=day_start(starts[0]), until=until)
        .filter(team=team)
        .annotate(month=TruncMonth("created_at", output_field=DateField()))
        .order_by()
        .values("month", "member_id", "provider")
        .annotate(
            spent=Sum("amount", filter=Q(settlement__isnull=False), default=0),
            held=Sum("amount", filter=Q(settlement__isnull=True), default=0),
        )
    )


def _usage(by: str, starts: list[date], rows: list[dict], emails: dict[int, str]) -> Usage:
    months = len(starts)
    index = {month: i for i, month in enumerate(starts)}
    found: dict[str, dict] = {}
    for row in rows:
        if row["month"] not in index:
            continue
        key, label = _key_and_label(by, row, emails)
        series = found.setdefault(
            key, {"label": label, "spent": [0] * months, "held": [0] * months}
        )
        series["spent"][index[row["month"]]] += row["spent"]
        series["held"][index[row["month"]]] += row["held"]
    series = [
        Series(key, s["label"], tuple(s["spent"]), tuple(s["held"])) for key, s in found.items()
    ]
    series.sort(key=lambda s: (-s.total, s.label.lower()))
    return Usage(by, tuple(starts), tuple(series))


def monthly_usages(
    team: Team,
    months: int = 6,
    now=None,
    *,
    version: int | None = None,
    emails: dict[int, str] | None = None,
) -> dict[str, Usage]:
    """Per month, by member (whose job) and by provider, from one query: credits of jobs reserved
    that month, spent once the video was delivered and held while the job runs (refunds are out).
    This month's column is what budgets count as this month's spending.

    `version` (`ledger_version`, read first) lets the rows come from the cache; `emails` are
    members' addresses already at hand, read fresh either way, so a changed one shows at once."""
    if months < 1:
        raise ValueError("usage needs at least one month")
    starts = month_starts(months, now)
    rows = _derived(
        team, version, f"months:{starts[0]}:{months}", lambda: _monthly_rows(team, starts)
    )
    emails = dict(emails or {})
    missing = {row["member_id"] for row in rows} - set(emails) - {None}
    if missing:  # former members, or no addresses given
        emails |= dict(User.objects.filter(pk__in=missing).values_list("pk", "email"))
    return {by: _usage(by, starts, rows, emails) for by in GROUPS}


def monthly_usage(team: Team, months: int = 6, by: str = "member", now=None) -> Usage:
    if by not in GROUPS:
        raise ValueError(f"usage is by member or by provider, not {by!r}")
    return monthly_usages(team, months, now)[by]


def _key_and_label(by: str, row: dict, emails: dict[int, str]) -> tuple[str, str]:
    if by == "member":
        if row["member_id"] is None:  # the user was deleted; their credits still count
            return "", "Former member"
        return str(row["member_id"]), emails.get(row["member_id"], "Former member")
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
