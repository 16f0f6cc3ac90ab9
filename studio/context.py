from django.utils.functional import SimpleLazyObject

from studio.access import CURRENT_TEAM_KEY
from studio.billing import ledger
from studio.billing.budgets import warnings_due


def workspace(request):
    """The header's team switcher and the credit banner: the teams the user belongs to, the one in
    use and its warnings.

    Every value is lazy, computed when a template first shows it: the status partial that every
    open job page polls renders no header, so it must not pay for one (issue 9).
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    header = _Header(request, user)
    return {
        "current_membership": SimpleLazyObject(lambda: header.current_membership),
        "my_memberships": SimpleLazyObject(lambda: header.memberships),
        "current_team": SimpleLazyObject(lambda: header.current_team),
        "membership": getattr(request, "membership", None),
        "credit_warnings": SimpleLazyObject(lambda: _warnings(request)),
    }


class _Header:
    def __init__(self, request, user):
        self.request, self.user = request, user
        self._memberships = None

    @property
    def memberships(self) -> list:
        if self._memberships is None:
            memberships = self.user.memberships.select_related("team").order_by("team__name")
            self._memberships = list(memberships)
        return self._memberships

    @property
    def current_team(self):
        current = getattr(self.request, "team", None)
        if current is not None:
            return current
        slug = self.request.session.get(CURRENT_TEAM_KEY)
        return next((m.team for m in self.memberships if m.team.slug == slug), None)

    @property
    def current_membership(self):
        membership = getattr(self.request, "membership", None)
        if membership is not None:
            return membership
        current = self.current_team
        return next((m for m in self.memberships if m.team == current), None)


def _warnings(request) -> list[str]:
    """The banner: thresholds reached now, for the team in use (e-mails go out once a month);
    the account row is the one the view read, if it read one."""
    membership = getattr(request, "membership", None)
    if membership is None:
        return []
    account = getattr(request, "credit_account", None) or ledger.account(membership.team)
    due = warnings_due(membership.team, membership.user, account, limit=membership.monthly_limit)
    return [message for _, message in due]
