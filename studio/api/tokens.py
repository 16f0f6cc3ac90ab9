"""API tokens: made for a member in a team, shown once, stored only as a digest; a token acts as
its member with that member's current role, and never outside its team."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone

from studio.models import ApiToken, Membership, TokenScope
from studio.models.api import token_digest

PREFIX = "stu_"
MAX_TOKEN_LENGTH = 100  # anything longer is not one of ours, and never reaches the database
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often


@dataclass
class Caller:
    """Who a request's token speaks for."""

    token: ApiToken
    membership: Membership

    @property
    def team(self):
        return self.membership.team

    @property
    def can_write(self) -> bool:
        return self.token.can_write


def create_token(membership: Membership, name: str, scope: str) -> tuple[ApiToken, str]:
    """A new token and its text, which is never stored and cannot be shown again."""
    name = " ".join(str(name).split())[:80]
    if not name or "\x00" in name:
        raise ValueError("Give the token a name, so you can recognise it later.")
    if scope not in TokenScope.values:
        raise ValueError(f"Scope must be one of: {', '.join(TokenScope.values)}.")
    if scope == TokenScope.READ_WRITE and not membership.can_submit:
        raise PermissionDenied("Viewers can make read-only tokens only.")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        team=membership.team,
        user=membership.user,
        name=name,
        scope=scope,
        prefix=raw[:12],
        digest=token_digest(raw),
    )
    return token, raw


def revoke_token(membership: Membership, token_id) -> bool:
    """Revoke one of the team's tokens: one's own, or anyone's for an admin or owner."""
    tokens = ApiToken.objects.filter(team=membership.team, pk=token_id, revoked_at__isnull=True)
    if not membership.can_manage:
        tokens = tokens.filter(user=membership.user)
    return bool(tokens.update(revoked_at=timezone.now()))


def authenticate(raw: str) -> Caller | None:
    """The caller a bearer token speaks for, or None (unknown, revoked, or its member left)."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.isascii() or not raw.isprintable():
        return None
    # One query: the token and, through its member's membership of the token's team, the role.
    membership = (
        Membership.objects.select_related("team", "user")
        .filter(
            user__api_tokens__digest=token_digest(raw),
            user__api_tokens__revoked_at__isnull=True,
            user__api_tokens__team=F("team"),
        )
        .annotate(
            token_id=F("user__api_tokens__id"),
            token_scope=F("user__api_tokens__scope"),
            token_last_used_at=F("user__api_tokens__last_used_at"),
        )
        .first()
    )
    if membership is None:
        return None
    token = ApiToken(
        pk=membership.token_id,
        team_id=membership.team_id,
        user_id=membership.user_id,
        scope=membership.token_scope,
        last_used_at=membership.token_last_used_at,
    )
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return Caller(token=token, membership=membership)
