"""A bad setting stops start-up with a message naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start(script: str = "import django; django.setup()", **env) -> subprocess.CompletedProcess:
    """Run `script` in a fresh Python whose settings come from `env` (and nothing of ours)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"}
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=clean | {"DJANGO_SETTINGS_MODULE": "project.settings"} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DEBUG": "maybe"}, "DEBUG must be one of"),
        ({"DEBUG": "false"}, "SECRET_KEY must be set when DEBUG is off"),
        (
            {"DEBUG": "false", "SECRET_KEY": "s" * 50, "ALLOWED_HOSTS": ""},
            "ALLOWED_HOSTS must be set",
        ),
        ({"DATABASE_URL": "nonsense://x"}, "DATABASE_URL is not a valid database URL"),
        ({"PUBLIC_BASE_URL": "example.com"}, "PUBLIC_BASE_URL must be a URL starting with http://"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must be a URL starting with redis://"),
        ({"MAX_UPLOAD_BYTES": "lots"}, "MAX_UPLOAD_BYTES must be a whole number, got 'lots'"),
        ({"EMAIL_PORT": "0"}, "EMAIL_PORT must be at least 1"),
        ({"Q_TIMEOUT": "400"}, "Q_RETRY (240) must be greater than Q_TIMEOUT (400)"),
        ({"TASK_TIME_LIMIT": "200"}, "which must be greater than TASK_TIME_LIMIT (200)"),
        ({"AIML_API_PATH": "v3"}, "AIML_API_PATH must be seed or universal"),
        ({"AKOOL_PLAN": "gold"}, "AKOOL_PLAN must be one of free, starter, pro"),
        ({"AKOOL_BATCH_SIZE": "0"}, "AKOOL_BATCH_SIZE must be at least 1"),
        (  # AES cannot take a 20-byte key: every callback would be refused
            {"AKOOL_CLIENT_ID": "c" * 16, "AKOOL_CLIENT_SECRET": "s" * 20},
            "AKOOL_CLIENT_SECRET must be 16, 24 or 32 bytes long",
        ),
        (
            {"AKOOL_CLIENT_ID": "short-id", "AKOOL_CLIENT_SECRET": "s" * 32},
            "AKOOL_CLIENT_ID must be 16 bytes long",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(env, named):
    result = start(**env)
    assert result.returncode != 0
    assert named in result.stderr


def test_the_defaults_start(tmp_path):
    result = start(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    assert result.returncode == 0, result.stderr


def test_akool_credentials_aes_can_take_start(tmp_path):
    result = start(
        DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
        AKOOL_CLIENT_ID="c" * 16,
        AKOOL_CLIENT_SECRET="s" * 24,
    )
    assert result.returncode == 0, result.stderr
