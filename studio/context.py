from studio.access import CURRENT_TEAM_KEY
from studio.billing import ledger
from studio.billing.budgets import warnings_due


def workspace(request):
    """The team switcher in the header: the teams the user belongs to and the one in use."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(user.memberships.select_related("team").order_by("team__name"))
    current = getattr(request, "team", None)
    if current is None:
        slug = request.session.get(CURRENT_TEAM_KEY)
        current = next((m.team for m in memberships if m.team.slug == slug), None)
    membership = getattr(request, "membership", None)
    current_membership = membership or next((m for m in memberships if m.team == current), None)
    return {
        "current_membership": current_membership,
        "my_memberships": memberships,
        "current_team": current,
        "membership": membership,
        "credit_warnings": _warnings(membership),
    }


def _warnings(membership) -> list[str]:
    """The banner: thresholds reached now, for the team in use (e-mails go out once a month)."""
    if membership is None:
        return []
    account = ledger.account(membership.team)
    return [message for _, message in warnings_due(membership.team, membership.user, account)]
