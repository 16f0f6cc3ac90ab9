"""The team's credits page: figures, the ledger with filters and a CSV export, monthly usage."""

import hashlib
from datetime import date
from functools import partial

from django import forms
from django.core.paginator import Paginator
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from studio.access import team_view
from studio.billing import budgets, ledger, usage
from studio.billing.ledger_csv import csv_pieces
from studio.models import EntryKind
from studio.views.htmx import partial_or_page, query_without_page

PAGE_SIZE = 25
# What a ledger row shows; `job__params`, `job__model` and `job__provider` give the job's title.
LEDGER_ROW_FIELDS = (
    *("id", "team", "kind", "amount", "job", "member", "actor", "provider", "reason", "created_at"),
    *("member__email", "actor__email", "job__params", "job__model", "job__provider"),
)
BAD_DATE = "Enter a date as YYYY-MM-DD, for example 2025-03-31."


# The ledger starts long after the first and ends long before the last date Python can hold.
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)


def _date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={
            "invalid": BAD_DATE,
            "min_value": f"{label}: the ledger starts after {EARLIEST:%Y-%m-%d}.",
            "max_value": f"{label}: choose a date before {LATEST:%Y-%m-%d}.",
        },
        validators=[MinValueValidator(EARLIEST), MaxValueValidator(LATEST)],
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )


class LedgerFilter(forms.Form):
    member = forms.TypedChoiceField(label="Member", required=False, coerce=int, empty_value=None)
    provider = forms.ChoiceField(label="Provider", required=False)
    kind = forms.ChoiceField(label="Entry", required=False)
    date_from = _date_field("From")
    date_to = _date_field("To")

    def __init__(self, data, team, version: int | None = None):
        super().__init__(data)
        self.people = dict(team.members.order_by("email").values_list("pk", "email"))
        self.fields["member"].choices = [("", "Anyone")] + list(self.people.items())
        providers = usage.ledger_providers(team, version)
        self.fields["provider"].choices = [("", "Any provider")] + providers
        self.fields["kind"].choices = [("", "Any entry")] + list(EntryKind.choices)
        self.team = team

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def select_all(self) -> bool:
        """Whether the filters are valid and leave out no entry."""
        return self.is_valid() and not any(self.cleaned_data.values())

    def entries(self):
        # With a filter in error, show nothing rather than rows the member did not ask for.
        entries = usage.ledger_entries(self.team)
        return (
            usage.filter_ledger(entries, **self.cleaned_data) if self.is_valid() else entries.none()
        )


def _overview(team, version: int, emails: dict[int, str]) -> dict:
    """The figures and both charts. This month's spending is the charts' last column, summed: one
    query gives both, by the one definition in `budgets.commitments`, read again only once the
    ledger has a new entry."""
    account = ledger.account(team)
    usages = usage.monthly_usages(team, version=version, emails=emails)
    committed = sum(usages["member"].month_totals()[-1:])
    charts = []
    for by, title in (("member", "Credits by member"), ("provider", "Credits by provider")):
        # A callable, so a template fragment already cached for these figures never draws it.
        svg = partial(
            usage.usage_svg, usages[by], title=f"{title}, last six months", id_prefix=f"usage-{by}"
        )
        charts.append({"by": by, "title": title, "usage": usages[by], "svg": svg})
    return {
        # Names exactly what the charts and their tables show (the usages are plain frozen data),
        # so their rendered HTML is cached under it.
        "usage_digest": hashlib.sha256(repr(usages).encode()).hexdigest(),
        "account": account,
        "low": budgets.account_is_low(account),
        "committed": committed,
        "cap_left": None
        if account.monthly_cap is None
        else max(account.monthly_cap - committed, 0),
        "charts": charts,
    }


def _ledger_page(request, filters: LedgerFilter, version: int):
    """The page of entries asked for, each with the team's figures after it."""
    # A job shows only its title: leave its other (large) columns in the database.
    entries = filters.entries().select_related("job").only(*LEDGER_ROW_FIELDS)
    paginator = Paginator(entries, PAGE_SIZE)
    if filters.select_all():
        paginator.count = version  # the whole ledger: no second count
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    usage.add_running_figures(request.team, page.object_list)
    return page


def _ledger_key(request, version: int, emails: dict[int, str]) -> str:
    """Names the rendered ledger rows: the ledger's state, the filters and page asked for, and
    the members' addresses the rows show. (An actor who is not a member, such as staff granting
    credits, could change address unseen: the rows are cached only briefly for that.)"""
    team = (request.team.pk, request.team.slug)
    named = (team, version, sorted(request.GET.lists()), sorted(emails.items()))
    return hashlib.sha256(repr(named).encode()).hexdigest()


@team_view()
@require_safe
@vary_on_headers("HX-Request")
def credits_page(request):
    """Balance and limits, the filtered ledger a page at a time (the part htmx swaps), usage."""
    version = usage.ledger_version(request.team)
    filters = LedgerFilter(request.GET, request.team, version)
    context = {
        # Read only when the rendered rows are not in the cache under `ledger_key`.
        "page": SimpleLazyObject(lambda: _ledger_page(request, filters, version)),
        "ledger_key": _ledger_key(request, version, filters.people),
        "filters": filters,
        "query": query_without_page(request),
    }
    template = partial_or_page(request, "studio/credits.html", "ledger")
    if "#" not in template:  # the figures and charts are only drawn on a whole page
        context |= _overview(request.team, version, filters.people)
        request.credit_account = context["account"]  # the header's banner reads the same row
    return render(request, template, context)


@team_view()
@require_safe
def ledger_csv(request):
    """Every ledger entry that the same filters as the page select, as a CSV download."""
    filters = LedgerFilter(request.GET, request.team)
    if not filters.is_valid():
        problems = [
            f"{filters.fields[name].label if name in filters.fields else 'Filters'}: {' '.join(e)}"
            for name, e in filters.errors.items()
        ]
        return HttpResponseBadRequest("\n".join(problems), content_type="text/plain")
    response = StreamingHttpResponse(
        csv_pieces(request.team, filters.cleaned_data),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{request.team.slug}-ledger.csv"'
    return response
