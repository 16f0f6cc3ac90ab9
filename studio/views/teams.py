from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from studio import teams
from studio.access import team_view
from studio.forms import InviteForm, TeamForm
from studio.models import Invite, Membership, Role, TokenScope


@login_required
def team_create(request):
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        team = teams.create_team(request.user, form.cleaned_data["name"])
        messages.success(request, f"{team} is ready. Invite your colleagues from its settings.")
        return redirect("dashboard", team_slug=team.slug)
    return render(request, "studio/team_create.html", {"form": form})


@team_view()
def team_settings(request):
    if request.method == "POST":  # the page's one form of its own: the team's name
        return team_rename(request)
    return settings_page(request)


def team_rename(request):
    if not request.membership.can_manage:
        raise PermissionDenied("Renaming the team needs the admin role or higher.")
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = teams.rename_team(request.membership, form.cleaned_data["name"])
        except teams.TeamError as error:
            form.add_error("name", str(error))
        else:
            messages.success(request, f"The team is now called {team}.")
            return redirect("team_settings", team_slug=team.slug)
    return settings_page(request, rename_form=form, status=400)


def settings_page(request, *, status=200, **extra):
    team = request.team
    can_manage = request.membership.can_manage
    tokens = team.api_tokens.filter(revoked_at__isnull=True).select_related("user")
    if not request.membership.can_manage:  # admins and owners see and revoke everyone's
        tokens = tokens.filter(user=request.user)
    context = extra | {
        "tokens": tokens,
        "token_scopes": TokenScope.choices,
        "members": team.memberships.select_related("user").order_by("user__email"),
        # Each with its link, to show again: only to those who may manage invites.
        "invites": [
            (invite, teams.invite_url(invite, request))
            for invite in team.invites.pending().select_related("created_by")
        ]
        if can_manage
        else [],
        "invite_form": InviteForm(),
        "rename_form": extra.get("rename_form") or TeamForm(initial={"name": team.name}),
        "roles": Role.choices,
        "new_link": _new_link(request),
        # Endpoints the workers disabled (or an admin turned off): why, until turned back on.
        "disabled_webhooks": team.webhook_endpoints.filter(enabled=False) if can_manage else [],
    }
    return render(request, "studio/team_settings.html", context, status=status)


def _new_link(request) -> str | None:
    """The open link just made, shown once at the top; built from this request, not stored."""
    invite_id = request.session.pop("new_invite_id", None)
    invite = request.team.invites.pending().filter(pk=invite_id).first() if invite_id else None
    return teams.invite_url(invite, request) if invite else None


def _done(request, action, *args, success: str):
    """Run a team action, turning a broken rule into a message, then back to the settings page."""
    try:
        action(*args)
    except teams.TeamError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, success)
    return redirect("team_settings", team_slug=request.team.slug)


@team_view(Role.ADMIN)
@require_POST
def invite_create(request):
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect("team_settings", team_slug=request.team.slug)
    try:
        invite = teams.invite(request.membership, **form.cleaned_data, request=request)
    except teams.TeamError as error:
        messages.error(request, str(error))
    else:
        if invite.email:
            messages.success(request, f"Invitation sent to {invite.email}.")
        else:
            request.session["new_invite_id"] = invite.pk
    return redirect("team_settings", team_slug=request.team.slug)


@team_view(Role.ADMIN)
@require_POST
def invite_revoke(request, invite_id):
    invite = get_object_or_404(Invite, pk=invite_id, team=request.team)
    return _done(
        request, teams.revoke_invite, request.membership, invite, success="Invitation revoked."
    )


@team_view(Role.ADMIN)
@require_POST
def member_role(request, membership_id):
    target = get_object_or_404(Membership, pk=membership_id, team=request.team)
    role = request.POST.get("role", "")
    return _done(
        request,
        teams.change_role,
        request.membership,
        target,
        role,
        success=f"{target.user} is now {role}.",
    )


@team_view(Role.ADMIN)
@require_POST
def member_remove(request, membership_id):
    target = get_object_or_404(Membership, pk=membership_id, team=request.team)
    return _done(
        request,
        teams.remove_member,
        request.membership,
        target,
        success=f"{target.user} was removed; their jobs stay with the team.",
    )


@team_view()
@require_POST
def team_leave(request):
    if request.POST.get("confirm") != "yes":  # the page asks first; a bare POST changes nothing
        messages.error(request, "Confirm that you want to leave the team.")
        return redirect("team_settings", team_slug=request.team.slug)
    try:
        teams.leave_team(request.membership)
    except teams.TeamError as error:
        messages.error(request, str(error))
        return redirect("team_settings", team_slug=request.team.slug)
    messages.success(request, f"You left {request.team}.")
    return redirect("home")


@login_required
def invite_accept(request, token):
    invite = get_object_or_404(Invite.objects.select_related("team", "created_by"), token=token)
    if request.method == "POST":
        try:
            membership = teams.accept_invite(token, request.user)
        except teams.TeamError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Welcome to {membership.team}.")
            return redirect("dashboard", team_slug=membership.team.slug)
    return render(request, "studio/invite_accept.html", {"invite": invite})
