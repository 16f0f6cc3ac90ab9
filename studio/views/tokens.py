"""API tokens on the team settings page: make one (shown once), revoke one."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from studio.access import team_view
from studio.api.tokens import create_token, revoke_token
from studio.models import ApiToken
from studio.views.teams import settings_page


@team_view()
@require_POST
def token_create(request):
    try:
        _, raw = create_token(
            request.membership, request.POST.get("name", ""), request.POST.get("scope", "")
        )
    except (ValueError, PermissionDenied) as refusal:
        messages.error(request, str(refusal))
        return redirect("team_settings", team_slug=request.team.slug)
    # Shown in this answer only: the token is never stored, in the session or anywhere else.
    return settings_page(request, new_token=raw)


@team_view()
@require_POST
def token_revoke(request, token_id):
    get_object_or_404(ApiToken, pk=token_id, team=request.team)  # another team's: no such page
    if revoke_token(request.membership, token_id):
        messages.success(request, "The token was revoked.")
    else:
        messages.error(request, "No such token, or it is not yours to revoke.")
    return redirect("team_settings", team_slug=request.team.slug)
