"""The Docker image's roles (docker/entrypoint.sh) and compose.yaml: migrations run once, in the
`release` step, never in a web start-up; the web server runs threaded workers; every service
gets time to stop gently."""

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def run_role(role: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    """The entrypoint as the image runs it: `python` and `gunicorn` on PATH (a stand-in gunicorn
    that prints its arguments), a database of its own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # the venv's, as in the image
    python.chmod(0o755)
    gunicorn = bin_dir / "gunicorn"
    gunicorn.write_text('#!/bin/sh\necho "gunicorn $*"\n')
    gunicorn.chmod(0o755)
    env = (
        os.environ
        | {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "MEDIA_ROOT": str(tmp_path / "media"),
            "DEBUG": "true",
        }
        | extra
    )
    env.pop("REDIS_URL", None)
    return subprocess.run(
        ["sh", str(ENTRYPOINT), role],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def tables(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_the_release_role_migrates_and_makes_the_cache_table(tmp_path):
    done = run_role("release", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    made = tables(tmp_path / "db.sqlite3")
    assert {"studio_job", "django_migrations", settings.CACHE_TABLE} <= made


def test_the_web_role_serves_with_threads_and_never_migrates(tmp_path):
    done = run_role("web", tmp_path, WEB_CONCURRENCY="2", WEB_THREADS="6")
    assert done.returncode == 0, done.stdout + done.stderr
    command = done.stdout.strip()
    assert command.startswith("gunicorn project.wsgi"), command
    assert "--workers 2" in command and "--worker-class gthread" in command
    assert "--threads 6" in command
    timeout, graceful = (
        int(re.search(rf"--{name} (\d+)", command)[1]) for name in ("timeout", "graceful-timeout")
    )
    assert graceful <= timeout and "--keep-alive" in command
    assert not tables(tmp_path / "db.sqlite3")  # nothing migrated, not even a file made


def test_compose_runs_the_release_once_before_everything_else_and_stops_gently():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    release = services["release"]
    assert release["command"] == "release" and release["restart"] == "no"
    for name in ("web", "worker", "engine"):
        after = services[name]["depends_on"]["release"]
        assert after == {"condition": "service_completed_successfully"}, name
    grace = {
        name: int(services[name]["stop_grace_period"].rstrip("s"))
        for name in services
        if "stop_grace_period" in services[name]
    }
    graceful_timeout = int(re.search(r"--graceful-timeout (\d+)", ENTRYPOINT.read_text())[1])
    assert grace["web"] > graceful_timeout
    assert grace["worker"] > settings.TASK_TIME_LIMIT  # a render in progress finishes
    assert grace["engine"] > settings.ENGINE_STOP_SECONDS
