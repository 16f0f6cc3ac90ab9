import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.text import slugify


class Role(models.TextChoices):
    # Ordered from most to least powerful; RANK below relies on that order.
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


RANK = {Role.OWNER: 4, Role.ADMIN: 3, Role.MEMBER: 2, Role.VIEWER: 1}


class Team(models.Model):
    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=60, unique=True)
    is_personal = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    def __str__(self):
        return self.name

    @staticmethod
    def unique_slug(name: str) -> str:
        # A random tail keeps slugs unguessable enough and free of races between two "Acme"s.
        return f"{slugify(name)[:40] or 'team'}-{secrets.token_hex(3)}"


class MembershipQuerySet(models.QuerySet):
    def owners(self):
        return self.filter(role=Role.OWNER)


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    monthly_limit = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Most credits this member may commit per calendar month."
    )
    joined_at = models.DateTimeField(auto_now_add=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team"),
        ]
        ordering = ["joined_at"]

    def __str__(self):
        return f"{self.user} in {self.team} as {self.role}"

    def at_least(self, role: str) -> bool:
        return RANK[Role(self.role)] >= RANK[Role(role)]

    @property
    def can_submit(self) -> bool:
        return self.at_least(Role.MEMBER)

    @property
    def can_manage(self) -> bool:
        return self.at_least(Role.ADMIN)


def _invite_token() -> str:
    return secrets.token_urlsafe(32)


def _invite_expiry():
    return timezone.now() + timedelta(days=settings.INVITE_TTL_DAYS)


class InviteQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(
            accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now()
        )


class Invite(models.Model):
    """An invitation to a team: addressed to one e-mail, or an open link. Either works once."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    email = models.EmailField(
        blank=True, help_text="Empty for a link anyone holding it can use once."
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token = models.CharField(max_length=64, unique=True, default=_invite_token)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=_invite_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InviteQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"invite to {self.team} ({self.email or 'link'})"

    @property
    def status_sentence(self) -> str:
        return {
            "accepted": "This invitation has already been used.",
            "revoked": "This invitation has been revoked.",
            "expired": "This invitation has expired.",
        }.get(self.status, "")

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"
