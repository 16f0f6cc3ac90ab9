"""Authentication backends that can take the signed-in user from a row already read.

A team page reads the user, their membership and the team in one statement (studio/access.py);
Django's own `get_user` then asks the session's backend for the user, and these backends answer
with that row instead of a second query. Everything else — which backends are allowed, the
inactive-user refusal, the session's password-hash check — is Django's, unchanged.
"""

from contextvars import ContextVar

from allauth.account.auth_backends import AuthenticationBackend
from django.contrib.auth import backends

# The user row a team view read with its membership, for this request only.
prefetched_user = ContextVar("prefetched_user", default=None)


class _PrefetchedUserMixin:
    def get_user(self, user_id):
        user = prefetched_user.get()
        if user is None or str(user.pk) != str(user_id):
            return super().get_user(user_id)
        return user if self.user_can_authenticate(user) else None


class ModelBackend(_PrefetchedUserMixin, backends.ModelBackend):
    pass


class AllauthBackend(_PrefetchedUserMixin, AuthenticationBackend):
    pass
