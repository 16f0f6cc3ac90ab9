"""The token's team: its members and their roles (read)."""

from datetime import datetime

from ninja import Router, Schema, Status

from studio.api.errors import answers

router = Router(tags=["team"])


class MemberOut(Schema):
    email: str
    role: str
    joined_at: datetime


class TeamOut(Schema):
    slug: str
    name: str
    members: list[MemberOut]
    your_role: str
    token_scope: str


@router.get("", response=answers(200, TeamOut), summary="The token's team, its members and roles")
def team(request):
    caller = request.caller
    members = caller.team.memberships.select_related("user").order_by("user__email")
    return Status(
        200,
        {
            "slug": caller.team.slug,
            "name": caller.team.name,
            "members": [
                {"email": m.user.email, "role": m.role, "joined_at": m.joined_at} for m in members
            ],
            "your_role": caller.membership.role,
            "token_scope": caller.token.scope,
        },
    )
