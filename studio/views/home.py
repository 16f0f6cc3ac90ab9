from django.shortcuts import redirect, render
from django.views.decorators.vary import vary_on_headers

from studio.access import CURRENT_TEAM_KEY, team_view
from studio.billing import ledger
from studio.models import Job
from studio.views.htmx import partial_or_page


def home(request):
    """Send a signed-in person to the team they used last; everyone else sees the welcome page."""
    if not request.user.is_authenticated:
        return render(request, "studio/welcome.html")
    memberships = request.user.memberships.select_related("team")
    last = request.session.get(CURRENT_TEAM_KEY)
    chosen = (
        memberships.filter(team__slug=last).first() or memberships.order_by("joined_at").first()
    )
    if chosen is None:
        return redirect("team_create")
    return redirect("dashboard", team_slug=chosen.team.slug)


@team_view()
@vary_on_headers("HX-Request")
def dashboard(request):
    jobs = Job.objects.filter(team=request.team).for_cards()[:12]
    active = any(job.is_active for job in jobs)
    context = {"jobs": jobs, "poll": active}
    if not request.htmx:  # the whole page shows the team's available credits
        # (the header's banner reads the same row)
        context["credits_account"] = request.credit_account = ledger.account(request.team)
    return render(
        request, partial_or_page(request, "studio/dashboard.html", "recent-jobs"), context
    )
