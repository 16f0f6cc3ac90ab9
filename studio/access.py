"""Who may see what. Every team-scoped view goes through `team_view`, so a team's pages, partials
and files answer 404 to anyone who is not its member, exactly as if they did not exist."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404

from studio.models import Job, Membership, Role

CURRENT_TEAM_KEY = "current_team"


def membership_or_404(user, slug: str) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("team", "user"), team__slug=slug, user=user
    )


def team_view(min_role: str = Role.VIEWER):
    """Resolve `team_slug` to the user's membership (404 if none); 403 if the role is too low."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, team_slug, *args, **kwargs):
            membership = membership_or_404(request.user, team_slug)
            if not membership.at_least(min_role):
                raise PermissionDenied(f"This needs the {min_role} role or higher.")
            request.membership, request.team = membership, membership.team
            if request.session.get(CURRENT_TEAM_KEY) != membership.team.slug:
                # Written only when the team changes: a polled partial writes nothing.
                request.session[CURRENT_TEAM_KEY] = membership.team.slug
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def find_team_job(team, job_id) -> Job | None:
    try:
        return Job.objects.select_related("creator").filter(pk=job_id, team=team).first()
    except ValidationError:  # not a UUID
        return None


def team_job_or_404(request, job_id) -> Job:
    job = find_team_job(request.team, job_id)
    if job is None:
        raise Http404("No such job")
    return job
