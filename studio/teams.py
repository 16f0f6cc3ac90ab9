"""Team actions: every change to a team's membership goes through one of these functions.

Each takes the acting member, checks the role rules, and locks the team row so that two
concurrent changes (two owners demoting each other) cannot leave a team without an owner.
"""

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from studio.billing import ledger
from studio.billing import staff as audit
from studio.models import CreditAccount, Invite, Membership, Role, Team, User


class TeamError(Exception):
    """A team rule was broken; the message is shown to the person as is."""


NAME_MAX = Team._meta.get_field("name").max_length


def check_team_name(name: str) -> str:
    """The name as stored: stripped, 1 to NAME_MAX characters, no NUL (PostgreSQL refuses one)."""
    name = name.strip()
    if not name:
        raise TeamError("A team needs a name.")
    if "\x00" in name:
        raise TeamError("A team name cannot contain a NUL character.")
    if len(name) > NAME_MAX:
        raise TeamError(f"A team name can have at most {NAME_MAX} characters.")
    return name


def create_team(user: User, name: str, *, personal: bool = False) -> Team:
    with transaction.atomic():
        team = Team.objects.create(
            name=check_team_name(name), slug=Team.unique_slug(name), is_personal=personal
        )
        Membership.objects.create(team=team, user=user, role=Role.OWNER)
        CreditAccount.objects.create(team=team)
    return team


def personal_team_name(user: User) -> str:
    """Named from the person's name (Ada Lovelace's team), else from the address's local part
    (ada's team): never the whole address, which every later teammate would see in menus."""
    who = user.get_full_name().strip() or user.email.partition("@")[0].strip() or "My"
    suffix = "'s team"
    return who[: NAME_MAX - len(suffix)].rstrip() + suffix


def ensure_personal_team(user: User) -> Team:
    """Every user has a personal team, started with the welcome credits so they can try it."""
    team = Team.objects.filter(memberships__user=user, is_personal=True).first()
    if team is None:
        team = create_team(user, personal_team_name(user), personal=True)
        if settings.WELCOME_CREDITS:
            ledger.grant(team, settings.WELCOME_CREDITS, actor=None, reason="Welcome credits")
    return team


def rename_team(actor: Membership, name: str) -> Team:
    """Owners and admins rename the team. The slug stays: its URLs and API tokens keep working."""
    name = check_team_name(name)
    with transaction.atomic():
        _lock(actor.team)
        _fresh(actor)
        if not actor.can_manage:
            raise TeamError("Only owners and admins can rename the team.")
        team = Team.objects.get(pk=actor.team_id)
        before = team.name
        if name != before:
            team.name = name
            team.save(update_fields=["name"])
            audit.record(
                actor.user,
                "team.rename",
                f"{name} ({team.slug})",
                before={"name": before},
                after={"name": name},
            )
    actor.team = team
    return team


def _lock(team: Team) -> None:
    Team.objects.select_for_update().filter(pk=team.pk).first()


def _fresh(*memberships: Membership) -> None:
    """Re-read inside the lock: someone just removed or demoted acts as what they are now."""
    for membership in memberships:
        try:
            membership.refresh_from_db()
        except Membership.DoesNotExist:
            raise TeamError("That person is no longer a member of this team.") from None
    if len({m.team_id for m in memberships}) > 1:
        raise TeamError("Both people must belong to the same team.")


def _check_can_manage(actor: Membership, target_role: str | None = None) -> None:
    if not actor.can_manage:
        raise TeamError("Only owners and admins can manage members.")
    if target_role == Role.OWNER and actor.role != Role.OWNER:
        raise TeamError("Only an owner can make someone an owner or change an owner's role.")


def _owner_count(team: Team) -> int:
    return Membership.objects.filter(team=team, role=Role.OWNER).count()


def change_role(actor: Membership, target: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise TeamError(f"Role must be one of {', '.join(Role.values)}.")
    with transaction.atomic():
        _lock(target.team)
        _fresh(actor, target)
        _check_can_manage(actor, Role.OWNER if Role.OWNER in (role, target.role) else None)
        if target.role == Role.OWNER and role != Role.OWNER and _owner_count(target.team) == 1:
            raise TeamError("The last owner cannot be demoted; make someone else an owner first.")
        target.role = role
        target.save(update_fields=["role"])
    return target


def remove_member(actor: Membership, target: Membership) -> None:
    """Remove someone from the team. Their jobs and videos stay with the team."""
    with transaction.atomic():
        _lock(target.team)
        _fresh(actor, target)
        if actor.pk != target.pk:
            _check_can_manage(actor, target.role)
        if target.role == Role.OWNER and _owner_count(target.team) == 1:
            raise TeamError("The last owner cannot leave; make someone else an owner first.")
        target.delete()


def leave_team(membership: Membership) -> None:
    remove_member(membership, membership)


def invite(actor: Membership, *, email: str = "", role: str = Role.MEMBER, request=None) -> Invite:
    """Invite by e-mail (the mailed link works only for that address) or make an open link.

    Given the request, the mailed link points where the inviter reached us (see invite_url)."""
    _check_can_manage(actor, role)
    email = email.strip().lower()
    if email and actor.team.memberships.filter(user__email__iexact=email).exists():
        raise TeamError(f"{email} is already a member of {actor.team}.")
    created = Invite.objects.create(team=actor.team, email=email, role=role, created_by=actor.user)
    if email:
        link = invite_url(created, request)
        transaction.on_commit(lambda: _mail_invite(created, link))
    return created


def absolute_url(path: str, request=None) -> str:
    """A link for a page or a mail: to the scheme, host and port this person reached (the Host
    header has passed ALLOWED_HOSTS), so `bin/dev` on another port or a second domain gives links
    that work; outside a request (workers) to PUBLIC_BASE_URL."""
    if request is not None:
        return request.build_absolute_uri(path)
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def invite_url(invite: Invite, request=None) -> str:
    return absolute_url(reverse("invite_accept", args=[invite.token]), request)


def _mail_invite(invite: Invite, link: str | None = None) -> None:
    send_mail(
        subject=f"You are invited to {invite.team} on Studio",
        message=(
            f"{invite.created_by} invited you to join {invite.team} "
            f"as {invite.get_role_display()}.\n\n"
            f"Accept here (the link works once, until {invite.expires_at:%Y-%m-%d %H:%M} UTC):\n"
            f"{link or invite_url(invite)}\n"
        ),
        from_email=None,
        recipient_list=[invite.email],
    )


def revoke_invite(actor: Membership, invite_obj: Invite) -> None:
    if invite_obj.team_id != actor.team_id:
        raise TeamError("That invitation belongs to another team.")
    _check_can_manage(actor, invite_obj.role)
    Invite.objects.filter(pk=invite_obj.pk, accepted_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def accept_invite(token: str, user: User) -> Membership:
    """Use an invite. The conditional UPDATE makes "works once" hold under concurrency."""
    found = Invite.objects.select_related("team").filter(token=token).first()
    if found is None:
        raise TeamError("This invitation does not exist.")
    if found.status != "pending":
        raise TeamError(f"{found.status_sentence} Ask the team for a new one.")
    if found.email and found.email.lower() != user.email.lower():
        raise TeamError(
            f"This invitation is for {found.email}; sign in with that address to accept it."
        )
    if Membership.objects.filter(team=found.team, user=user).exists():
        raise TeamError(f"You are already a member of {found.team}.")
    with transaction.atomic():
        claimed = (
            Invite.objects.pending()
            .filter(pk=found.pk)
            .update(accepted_at=timezone.now(), accepted_by=user)
        )
        if claimed != 1:
            raise TeamError("This invitation has just been used; ask the team for a new one.")
        try:
            with transaction.atomic():
                return Membership.objects.create(team=found.team, user=user, role=found.role)
        except IntegrityError:
            raise TeamError(f"You are already a member of {found.team}.") from None
