"""A real django-q2 worker (`manage.py qcluster`) running against the test database."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(command: str = "qcluster", **extra_env: str) -> subprocess.Popen:
    """`manage.py qcluster` (or `run_engine`) against the test database and media folder."""
    env = (
        os.environ
        | {
            "DATABASE_URL": test_database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "DEBUG": "true",
            "Q_WORKERS": "1",
            "ENGINE_THREADS": "2",
        }
        | extra_env
    )
    env.pop("REDIS_URL", None)  # the ORM broker: the web side enqueues into the same database
    return subprocess.Popen(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: stopping it stops its workers too
    )


def stop_worker(process: subprocess.Popen) -> str:
    """Stop the cluster and wait until every process of it is gone (they hold DB connections)."""
    process.terminate()  # the cluster stops its own workers
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        output = ""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left
    process.wait()
    return output


@contextlib.contextmanager
def running_workers(env: dict[str, str]):
    """A `qcluster` worker and a `run_engine` loop for a browser test, stopped after it (their
    output is printed if either crashed)."""
    processes = [start_worker("qcluster", **env), start_worker("run_engine", **env)]
    try:
        yield
    finally:
        for process in processes:
            output = stop_worker(process)
            if "Traceback" in output:
                print(output)
