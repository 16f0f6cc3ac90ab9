"""Monthly limits: owners and admins set the team cap, the low-balance level and member limits,
all at once or not at all, each change in the audit log."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render

from studio.access import team_view
from studio.billing import budgets as budget_rules
from studio.billing import ledger
from studio.models import Role


class TeamBudgetForm(forms.Form):
    monthly_cap = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=budget_rules.MAX_LIMIT,
        label="Team monthly cap (credits; empty for none)",
    )
    low_balance_level = forms.IntegerField(
        min_value=0, max_value=budget_rules.MAX_LIMIT, label="Warn when available falls to"
    )


@team_view(Role.ADMIN)
def budgets(request):
    account = ledger.account(request.team)
    members = request.team.memberships.select_related("user").order_by("user__email")
    if request.method == "POST":
        form = TeamBudgetForm(request.POST)
        limits, errors = budget_rules.parse_member_limits(members, request.POST)
        if form.is_valid() and not errors:
            budget_rules.set_limits(request.user, account, form.cleaned_data, limits)
            messages.success(request, "Budgets saved.")
            return redirect("budgets", team_slug=request.team.slug)
        for message in errors:
            messages.error(request, message)
    else:
        form = TeamBudgetForm(
            initial={
                "monthly_cap": account.monthly_cap,
                "low_balance_level": account.low_balance_level,
            }
        )
    spent = budget_rules.committed_by_member(request.team)
    rows = [(m, spent.get(m.user_id, 0)) for m in members]
    context = {"form": form, "rows": rows, "committed": sum(spent.values())}
    return render(request, "studio/budgets.html", context)
