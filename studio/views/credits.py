"""The team's credits page: figures, the ledger with filters and a CSV export, monthly usage."""

import csv
import io
from datetime import date

from django import forms
from django.core.paginator import Paginator
from django.core.validators import MaxValueValidator, MinValueValidator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from studio.access import team_view
from studio.billing import budgets, ledger, usage
from studio.models import EntryKind
from studio.views.htmx import partial_or_page, query_without_page

PAGE_SIZE = 25
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

    def __init__(self, data, team):
        super().__init__(data)
        people = team.members.order_by("email").values_list("pk", "email")
        self.fields["member"].choices = [("", "Anyone")] + list(people)
        self.fields["provider"].choices = [("", "Any provider")] + usage.ledger_providers(team)
        self.fields["kind"].choices = [("", "Any entry")] + list(EntryKind.choices)
        self.team = team

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def entries(self):
        # With a filter in error, show nothing rather than rows the member did not ask for.
        entries = usage.ledger_entries(self.team)
        return (
            usage.filter_ledger(entries, **self.cleaned_data) if self.is_valid() else entries.none()
        )


def _overview(team) -> dict:
    """The figures and both charts. This month's spending is the charts' last column, summed: one
    query gives both, by the one definition in `budgets.commitments`."""
    account = ledger.account(team)
    usages = usage.monthly_usages(team)
    committed = sum(usages["member"].month_totals()[-1:])
    charts = []
    for by, title in (("member", "Credits by member"), ("provider", "Credits by provider")):
        svg = usage.usage_svg(
            usages[by], title=f"{title}, last six months", id_prefix=f"usage-{by}"
        )
        charts.append({"by": by, "title": title, "usage": usages[by], "svg": svg})
    return {
        "account": account,
        "low": budgets.account_is_low(account),
        "committed": committed,
        "cap_left": None
        if account.monthly_cap is None
        else max(account.monthly_cap - committed, 0),
        "charts": charts,
    }


@team_view()
@require_safe
@vary_on_headers("HX-Request")
def credits_page(request):
    """Balance and limits, the filtered ledger a page at a time (the part htmx swaps), usage."""
    filters = LedgerFilter(request.GET, request.team)
    entries = filters.entries().select_related("job")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    usage.add_running_figures(request.team, page.object_list)
    context = {"filters": filters, "page": page, "query": query_without_page(request)}
    template = partial_or_page(request, "studio/credits.html", "ledger")
    if "#" not in template:  # the figures and charts are only drawn on a whole page
        context |= _overview(request.team)
        request.credit_account = context["account"]  # the header's banner reads the same row
    return render(request, template, context)


class _Echo:
    """A file that hands back what is written, so csv.writer can feed a streaming response."""

    def write(self, value):
        return value


def _csv_text(rows, rows_per_piece: int = 1000):
    """CSV text a thousand rows at a time: a streaming response handles each piece it is given,
    so one per row would cost more than writing the rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % rows_per_piece == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


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
        _csv_text(usage.csv_rows(request.team, filters.cleaned_data)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{request.team.slug}-ledger.csv"'
    return response
