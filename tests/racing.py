"""Racing work on PostgreSQL: every action starts at one instant, each on its own connection."""

import threading

from django.db import connection

# PostgreSQL here allows 100 connections, so at most this many racers hold one at a time; the rest
# wait at the gate, already started, and go in as soon as a connection is free.
MAX_CONNECTIONS_IN_FLIGHT = 60


def race(actions, *, expected=Exception):
    """Run the callables at once; each result is its return value or the `expected` error raised."""
    barrier = threading.Barrier(len(actions))
    gate = threading.BoundedSemaphore(MAX_CONNECTIONS_IN_FLIGHT)
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
