"""200 submissions fired at once at PostgreSQL against a balance that pays for exactly 50.

Creates (and afterwards drops) its own database `studio_bench` on the server of DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/postgres). Prints, as its last line, accepted / refused
counts, whether the check_ledger checks passed, and reservations per second.
"""

import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "studio_bench"
SUBMISSIONS, AFFORDABLE, IN_FLIGHT = 200, 50, 60  # the server allows 100 connections


def recreate_database() -> str:
    base = SERVER.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
    return f"{base}/{BENCH_DB}"


def drop_database() -> None:
    base = SERVER.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def main() -> None:
    if not SERVER.startswith("postgres"):
        sys.exit("credits race: needs PostgreSQL; set DATABASE_URL=postgres://...")
    os.environ["DATABASE_URL"] = recreate_database()
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["MEDIA_ROOT"] = tempfile.mkdtemp(prefix="bench-media-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection
    from django_q.conf import Conf
    from PIL import Image

    from studio.billing import ledger
    from studio.billing.checks import ledger_problems
    from studio.jobs.submit import JobRefused, submit_job
    from studio.models import Job, User

    call_command("migrate", verbosity=0)
    Conf.SYNC = False  # jobs are queued for workers; none runs here
    user = User.objects.create_user("bench@example.test", "bench-password")
    membership = user.memberships.get()
    ledger.adjust(
        membership.team,
        AFFORDABLE - ledger.account(membership.team).available,
        actor=None,
        reason="bench balance",
    )
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), "teal").save(buffer, "PNG")
    params = {
        "duration": 1,
        "resolution": "480p",
        "aspect": "source",
        "fps": 8,
        "motion": "zoom_in",
        "strength": 5,
    }
    barrier, gate = threading.Barrier(SUBMISSIONS + 1), threading.BoundedSemaphore(IN_FLIGHT)
    outcomes = []

    def submit_one():
        upload = SimpleUploadedFile("p.png", buffer.getvalue(), content_type="image/png")
        barrier.wait()
        with gate:
            try:
                submit_job(membership, upload, "local", params)
                outcomes.append("accepted")
            except JobRefused:
                outcomes.append("refused")
            except Exception as error:  # noqa: BLE001 - counted and shown, not hidden
                outcomes.append(f"error: {error}")
            finally:
                connection.close()

    threads = [threading.Thread(target=submit_one) for _ in range(SUBMISSIONS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    accepted, refused = outcomes.count("accepted"), outcomes.count("refused")
    errors = [o for o in outcomes if o.startswith("error")]
    problems = ledger_problems()
    account = ledger.account(membership.team)
    print(
        f"{SUBMISSIONS} submissions in {elapsed:.2f} s ({SUBMISSIONS / elapsed:.0f} attempts/s); "
        f"jobs {Job.objects.count()}, available {account.available}, errors {len(errors)}"
    )
    for problem in problems + errors[:5]:
        print("  ", problem)
    connection.close()
    drop_database()
    print(
        f"credits race: {accepted} accepted / {refused} refused, ledger checks "
        f"{'passed' if not problems else 'FAILED'}, {accepted / elapsed:.0f} reservations/s"
    )


if __name__ == "__main__":
    main()
