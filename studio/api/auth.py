"""`Authorization: Bearer <token>` for the REST API (studio.api.tokens), with each token's
requests per minute counted (studio.api.throttle)."""

from django.core.exceptions import PermissionDenied
from ninja.security import HttpBearer

from studio.api.throttle import count_request
from studio.api.tokens import Caller, authenticate


class TeamToken(HttpBearer):
    """Sets `request.caller` (token + membership) for the view; a bad token answers 401, a
    token over its rate 429."""

    def authenticate(self, request, token: str):
        caller = authenticate(token)
        if caller is not None:
            count_request(caller.token.pk)
            request.caller = caller
        return caller


def writer(request) -> Caller:
    """The caller, if its token may write and its member may still submit (else 403)."""
    caller = request.caller
    if not caller.can_write:
        raise PermissionDenied("This token is read-only; make a read and write token to do this.")
    if not caller.membership.can_submit:
        raise PermissionDenied("This needs the member role or higher; viewers can only read.")
    return caller
