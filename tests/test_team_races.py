"""Team rules that must hold when two requests arrive at once (PostgreSQL, real connections)."""

import pytest

from studio import teams
from studio.models import Membership, Role, User
from tests.racing import race


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_link_invite_used_by_many_at_once_admits_exactly_one(personas):
    invite = teams.invite(personas.membership(personas.owner))
    people = [User.objects.create_user(f"rush{i}@x.test", "pw") for i in range(8)]
    results = race(
        [lambda u=u: teams.accept_invite(invite.token, u) for u in people], expected=teams.TeamError
    )
    joined = [r for r in results if isinstance(r, Membership)]
    assert len(joined) == 1
    assert all(isinstance(r, teams.TeamError) for r in results if r not in joined)
    assert personas.team.memberships.filter(user__in=people).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner(personas):
    first = personas.membership(personas.owner)
    second = personas.membership(personas.member)
    teams.change_role(first, second, Role.OWNER)
    for _ in range(5):
        race(
            [
                lambda: teams.change_role(
                    Membership.objects.get(pk=first.pk),
                    Membership.objects.get(pk=first.pk),
                    Role.ADMIN,
                ),
                lambda: teams.change_role(
                    Membership.objects.get(pk=second.pk),
                    Membership.objects.get(pk=second.pk),
                    Role.ADMIN,
                ),
            ]
        )
        assert personas.team.memberships.owners().count() == 1
        Membership.objects.filter(pk__in=[first.pk, second.pk]).update(role=Role.OWNER)
