"""API tokens: made for a member in a team, shown once, stored only as a digest; a token acts as
its member with that member's current role, and never outside its team."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from studio.models import ApiToken, Membership, Team, TokenScope, User
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
    membership = _member_of_token(token_digest(raw))
    if membership is None:
        return None
    token = membership.token
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return Caller(token=token, membership=membership)


# Every API request runs this: one fixed statement, so no ORM compilation on the hot path.
MEMBER_OF_TOKEN = """
    SELECT t.id, t.scope, t.last_used_at, t.team_id, t.user_id,
           m.id AS membership_id, m.role AS member_role, m.monthly_limit AS member_limit,
           team.name AS team_name, team.slug AS team_slug, team.is_personal AS team_personal,
           u.email AS user_email
    FROM {token} t
    JOIN {membership} m ON m.team_id = t.team_id AND m.user_id = t.user_id
    JOIN {team} team ON team.id = t.team_id
    JOIN {user} u ON u.id = t.user_id
    WHERE t.digest = %s AND t.revoked_at IS NULL
"""


@cache
def _member_of_token_sql() -> str:
    return MEMBER_OF_TOKEN.format(
        token=ApiToken._meta.db_table,
        membership=Membership._meta.db_table,
        team=Team._meta.db_table,
        user=User._meta.db_table,
    )


def _member_of_token(digest: str) -> Membership | None:
    """The membership a live token acts through (its member in its team), with `.token` set;
    None when the token is unknown or revoked, or its member has left the team."""
    token = next(iter(ApiToken.objects.raw(_member_of_token_sql(), [digest])), None)
    if token is None:
        return None
    team = Team(id=token.team_id, name=token.team_name, slug=token.team_slug)
    team.is_personal = bool(token.team_personal)
    user = User(id=token.user_id, email=token.user_email)
    token.team, token.user = team, user
    membership = Membership(
        id=token.membership_id,
        team=team,
        user=user,
        role=token.member_role,
        monthly_limit=token.member_limit,
    )
    membership.token = token
    return membership
