"""`Authorization: Bearer <token>` for the REST API (studio.api.tokens)."""

from ninja.security import HttpBearer

from studio.api.tokens import authenticate


class TeamToken(HttpBearer):
    """Sets `request.caller` (token + membership) for the view; a bad token answers 401."""

    def authenticate(self, request, token: str):
        caller = authenticate(token)
        if caller is not None:
            request.caller = caller
        return caller
