"""Django's database sessions, kept in studio.models.Session with the signed-in user's id beside
the data, and read with one fixed statement.

Every signed-in request reads its session; compiling the ORM's query for it cost about as much as
running it. A team page reads it with the user, their membership and the job in one statement
(studio/access.py) and hands the data over with `adopt`. Writing, expiry and everything else are
Django's own (SESSION_ENGINE names this).
"""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


def user_id_of(data: dict) -> int | None:
    """The signed-in user's id in a session's data, as the user_id column keeps it."""
    value = data.get(SESSION_KEY)
    return int(value) if str(value).isdigit() else None


def unexpired_after(connection):
    """The time now as a session row's expire_date is compared with it on `connection`."""
    from studio.models import Session

    expires = Session._meta.get_field("expire_date")
    return expires.get_db_prep_value(timezone.now(), connection)


class SessionStore(db.SessionStore):
    @classmethod
    def get_model_class(cls):
        from studio.models import Session

        return Session

    def create_model_instance(self, data):
        session = super().create_model_instance(data)
        session.user_id = user_id_of(data)
        return session

    def adopt(self, session_data: str) -> dict:
        """This session's data from a row the caller read (unexpired, by this session's key),
        so that reading the session costs no second query."""
        self._session_cache = self.decode(session_data)
        return self._session_cache

    def _get_session_from_db(self):
        model = self.model
        connection = connections[router.db_for_read(model)]
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {quote('session_data')} FROM {quote(model._meta.db_table)} "
                f"WHERE {quote('session_key')} = %s AND {quote('expire_date')} > %s",
                [self.session_key, unexpired_after(connection)],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return model(session_key=self.session_key, session_data=row[0])
