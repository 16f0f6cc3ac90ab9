"""Racing work on PostgreSQL: every action starts at one instant, each on its own connection."""

import threading

from django.db import connection

# Other databases (SQLite) race as before: at most this many at once.
MAX_CONNECTIONS_IN_FLIGHT = 60
# Connections kept free for everyone else on the server (other test runs, the test's own).
CONNECTION_MARGIN = 10


def connections_to_spare(racers: int) -> int:
    """How many racers may hold a connection at once: what the server has free, less a margin;
    at least 2 (or it would not be a race), never more than there are racers."""
    if connection.vendor != "postgresql":
        return MAX_CONNECTIONS_IN_FLIGHT
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT setting::int FROM pg_settings WHERE name = 'max_connections')"
            " - (SELECT count(*) FROM pg_stat_activity)"
        )
        (free,) = cursor.fetchone()
    return max(2, min(racers, free - CONNECTION_MARGIN))


def race(actions, *, expected=Exception):
    """Run the callables at once; each result is its return value or the `expected` error raised.
    Racers beyond the server's free connections wait at the gate, already started, and go in as
    soon as a connection is free."""
    barrier = threading.Barrier(len(actions))
    gate = threading.BoundedSemaphore(connections_to_spare(len(actions)))
    results = [None] * len(actions)

    def run(index, action):
        barrier.wait()
        with gate:
            try:
                results[index] = action()
            except expected as error:
                results[index] = error
            finally:
                connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
