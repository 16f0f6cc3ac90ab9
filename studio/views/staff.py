"""Staff pages: every team's credits with grants and adjustments, the price book, the audit log,
the providers' health.

To anyone but staff they answer 404, as if they did not exist.
"""

import json
from datetime import timedelta
from functools import wraps

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from studio.billing import ledger, reconciliation
from studio.billing.errors import CreditError
from studio.billing.ledger_csv import csv_text
from studio.billing.staff import PriceBookChanged, edit_prices, grant_or_adjust, teams_with_figures
from studio.models import AuditEntry, PriceBookVersion, PriceRule, Team
from studio.providers import label_of
from studio.providers.health import all_incidents, provider_health
from studio.views.credits import _date_field
from studio.views.htmx import partial_or_page

PAGE_SIZE = 50
MOST_CREDITS = 10**9  # far beyond any real grant; keeps a typo from overflowing the column
MOST_PRICE = 2**31 - 1  # PriceRule's PositiveIntegerField
SORTS = {
    "low": ("-is_low", "available", "name"),
    "name": ("name",),
    "available": ("available", "name"),
    "committed": ("-committed", "name"),
    "members": ("-member_count", "name"),
}
BACK_FIELDS = ("q", "sort", "page")  # the overview's state, carried through a grant


def staff_view(view):
    """Staff only; everyone else, anonymous included, gets 404 rather than a hint to log in."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not (request.user.is_active and request.user.is_staff):
            raise Http404
        return view(request, *args, **kwargs)

    return wrapper


def _report_errors(request, form):
    for name, errors in form.errors.items():
        label = form.fields[name].label or name.replace("_", " ").capitalize()
        for error in errors:
            messages.error(request, f"{label}: {error}")


# --- Teams and credits ----------------------------------------------------------------------
AMOUNT_HELP = "Enter a whole number of credits: positive to grant, negative to adjust down."


class GrantForm(forms.Form):
    amount = forms.IntegerField(
        min_value=-MOST_CREDITS,
        max_value=MOST_CREDITS,
        error_messages={"required": AMOUNT_HELP, "invalid": AMOUNT_HELP},
    )
    reason = forms.CharField(
        max_length=300,
        error_messages={"required": "Say why; it goes in the ledger and the audit log."},
    )

    def clean_amount(self):
        if self.cleaned_data["amount"] == 0:
            raise forms.ValidationError(
                "0 changes nothing: positive grants, negative adjusts down."
            )
        return self.cleaned_data["amount"]


@staff_view
@require_GET
@vary_on_headers("HX-Request")
def staff_overview(request):
    """Every team's figures, low-balance teams first; searchable by name, a page at a time."""
    q = request.GET.get("q", "").strip()
    if "\x00" in q:  # PostgreSQL cannot compare text with a NUL in it
        return HttpResponseBadRequest(
            "The search cannot contain a NUL character.", content_type="text/plain"
        )
    sort = request.GET.get("sort") if request.GET.get("sort") in SORTS else "low"
    teams = teams_with_figures().order_by(*SORTS[sort], "pk")
    if q:
        teams = teams.filter(Q(name__icontains=q) | Q(slug__icontains=q))
    page = Paginator(teams, PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({"q": q, "sort": sort} if q else {"sort": sort})
    context = {"page": page, "q": q, "sort": sort, "sorts": SORTS, "query": query}
    return render(request, partial_or_page(request, "studio/staff_overview.html", "teams"), context)


@staff_view
@require_POST
def staff_grant(request, team_id):
    team = get_object_or_404(Team, pk=team_id)
    form = GrantForm(request.POST)
    if not form.is_valid():
        _report_errors(request, form)
    else:
        amount, reason = form.cleaned_data["amount"], form.cleaned_data["reason"]
        try:
            entry = grant_or_adjust(request.user, team, amount, reason)  # audited inside
        except CreditError as error:
            messages.error(request, f"Nothing changed for {team}: {error}")
        else:
            available = ledger.account(team).available
            messages.success(
                request, f"{team}: {entry.kind} of {amount} credits; {available} available now."
            )
    back = {key: request.POST[key] for key in BACK_FIELDS if request.POST.get(key)}
    return redirect(reverse("staff_overview") + (f"?{urlencode(back)}" if back else ""))


# --- The price book -------------------------------------------------------------------------
def _price_field(label):
    message = "Enter a whole number of credits, 0 or more."
    return forms.IntegerField(
        label=label,
        min_value=0,
        max_value=MOST_PRICE,
        error_messages={"required": message, "invalid": message, "min_value": message},
    )


class PriceForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput)
    rule = forms.IntegerField(widget=forms.HiddenInput)
    per_video = _price_field("Per video")
    per_second = _price_field("Per second")
    note = forms.CharField(
        max_length=300,
        error_messages={"required": "Say why the price changes; it goes in the price book."},
    )


@staff_view
@require_http_methods(["GET", "POST"])
def staff_prices(request):
    """The current price book by provider, an edit form per rule, and the earlier versions."""
    if request.method == "POST":
        return _edit_price(request)
    versions = PriceBookVersion.objects.select_related("created_by")
    current = versions.latest()
    wanted = request.GET.get("version", "")
    if not wanted:
        shown = current
    # isdigit() alone admits "²", which int() refuses. Over 18 digits is no version's id (and
    # int() refuses over 4,300): such a number is a version that does not exist.
    elif wanted.isascii() and wanted.isdigit():
        if len(wanted) > 18:
            raise Http404("No such price book version")
        shown = get_object_or_404(versions, pk=wanted)
    else:
        return HttpResponseBadRequest(
            f"version must be a price book version's number; got {wanted[:40]!r}.",
            content_type="text/plain",
        )
    context = {
        "version": shown,
        "current": current,
        "rules": shown.rules.all(),  # ordered by provider, which {% regroup %} needs
        "earlier": versions.exclude(pk=current.pk)[:PAGE_SIZE],
    }
    return render(request, "studio/staff_prices.html", context)


def _edit_price(request):
    form = PriceForm(request.POST)
    if not form.is_valid():
        _report_errors(request, form)
        return redirect("staff_prices")
    data = form.cleaned_data
    rule = get_object_or_404(PriceRule, pk=data["rule"], version_id=data["version"])
    changes = {
        field: data[field]
        for field in ("per_video", "per_second")
        if data[field] != getattr(rule, field)
    }
    if not changes:
        messages.info(request, f"{rule}: the prices are unchanged, so no new version was made.")
        return redirect("staff_prices")
    try:
        version = edit_prices(request.user, data["version"], {rule.pk: changes}, note=data["note"])
    except PriceBookChanged as error:
        messages.error(request, str(error))
    else:
        figures = ", ".join(
            f"{field.replace('_', ' ')} {value}" for field, value in changes.items()
        )
        messages.success(request, f"Price book v{version.pk}: {rule} now {figures}.")
    return redirect("staff_prices")


# --- The audit log --------------------------------------------------------------------------
def _compact(value) -> str:
    return "—" if value is None else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


@staff_view
@require_GET
def staff_audit(request):
    entries = AuditEntry.objects.select_related("actor").order_by("-created_at", "-id")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    for entry in page:  # the page keeps these objects, so the template sees the attributes
        entry.before_text, entry.after_text = _compact(entry.before), _compact(entry.after)
    return render(request, "studio/staff_audit.html", {"page": page})


# --- Providers' health ----------------------------------------------------------------------
@staff_view
@require_GET
def staff_providers(request):
    """Per provider: availability, jobs in flight, errors, paused accounts, incidents."""
    providers = provider_health()
    context = {"providers": providers, "incidents": all_incidents(providers)}
    return render(request, "studio/staff_providers.html", context)


# --- Reconciliation with the providers' figures ---------------------------------------------
MOST_DAYS = 366  # a year a page: the table has a row per provider and day


class ReconciliationFilter(forms.Form):
    provider = forms.ChoiceField(
        label="Provider",
        required=False,
        error_messages={"invalid_choice": "Choose a provider from the list."},
    )
    start = _date_field("From")
    end = _date_field("To")
    day = _date_field("Day")
    kind = forms.ChoiceField(
        label="Export",
        required=False,
        choices=[("", "Differing jobs"), ("jobs", "Differing jobs"), ("days", "Days")],
        error_messages={"invalid_choice": "Export jobs or days."},
    )

    def __init__(self, data):
        super().__init__(data)
        choices = reconciliation.provider_choices()
        self.fields["provider"].choices = [("", "Every provider"), *choices]
        for field in (self.fields[name] for name in ("start", "end", "day")):
            for code in ("min_value", "max_value"):  # these name the field; problems() does too
                message = field.error_messages[code]
                field.error_messages[code] = message.removeprefix(f"{field.label}: ")

    def clean(self):
        """Fill in a missing bound so there is always a range: 30 days from the start, 30 days
        up to the end, or the last 30 days."""
        data = super().clean()
        if "start" in self.errors or "end" in self.errors:
            return data
        span = timedelta(days=reconciliation.DEFAULT_DAYS - 1)
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", "The end date is before the start date.")
            return data
        if start and not end:
            end = start + span
        elif end and not start:
            start = end - span
        elif not start:
            start, end = reconciliation.default_range()
        if (end - start).days >= MOST_DAYS:
            self.add_error("end", f"Choose at most {MOST_DAYS} days.")
        data["start"], data["end"] = start, end
        return data

    def problems(self) -> list[str]:
        return [
            f"{self.fields[name].label if name in self.fields else 'Filters'}: {error}"
            for name, errors in self.errors.items()
            for error in errors
        ]


@staff_view
@require_GET
def staff_reconciliation(request):
    """Per provider and day, our captured credits beside the provider's reported figures; with a
    `day`, that day's jobs whose figures differ."""
    filters = ReconciliationFilter(request.GET)
    context = {"filters": filters, "time_zone": settings.TIME_ZONE}
    if filters.is_valid():
        data = filters.cleaned_data
        provider = data["provider"] or None
        rows = reconciliation.daily(provider, start=data["start"], end=data["end"])
        selection = {"start": data["start"].isoformat(), "end": data["end"].isoformat()}
        context |= {
            "providers": reconciliation.by_provider(rows),
            "start": data["start"],
            "end": data["end"],
            "range_query": urlencode(selection),
            "query": urlencode({"provider": provider, **selection} if provider else selection),
        }
        if data["day"]:
            jobs = reconciliation.differing_jobs(provider, data["day"])
            context |= {
                "day": data["day"],
                "jobs": list(jobs),
                "day_provider": provider,
                "day_label": label_of(provider or ""),
            }
    return render(request, "studio/staff_reconciliation.html", context)


@staff_view
@require_GET
def staff_reconciliation_csv(request):
    """The page's filters as CSV: a row per differing job, or with `kind=days` a row per provider
    and day. A `day` narrows the range to that day."""
    filters = ReconciliationFilter(request.GET)
    if not filters.is_valid():
        return HttpResponseBadRequest("\n".join(filters.problems()), content_type="text/plain")
    data = filters.cleaned_data
    provider = data["provider"] or None
    start, end = (data["day"], data["day"]) if data["day"] else (data["start"], data["end"])
    kind = data["kind"] or "jobs"
    if kind == "days":
        rows = reconciliation.day_csv_rows(reconciliation.daily(provider, start=start, end=end))
    else:
        rows = reconciliation.job_csv_rows(reconciliation.differing_jobs(provider, start, end))
    response = StreamingHttpResponse(csv_text(rows), content_type="text/csv; charset=utf-8")
    name = f"reconciliation-{kind}-{start:%Y-%m-%d}-{end:%Y-%m-%d}"
    if provider:
        name += f"-{provider}"
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response
