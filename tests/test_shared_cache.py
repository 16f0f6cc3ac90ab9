"""Without Redis the default cache is a database table that every process shares (issue 9): failed
logins counted by one web process hold back the next attempt in another. Hot-path memos stay in
each process's own memory, so polled pages pay no query for them."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.locmem import LocMemCache

from studio.models import User
from tests import worker

# Five wrong passwords for one account, from a process of its own (a second web process).
FAIL_FIVE_TIMES = """
import django
django.setup()
from django.test import Client
client = Client()  # host "testserver", as in the test: the throttle keys on it
for _ in range(5):
    page = client.post("/accounts/login/", {"login": "target@x.test", "password": "wrong"})
    assert "Too many failed login attempts" not in page.content.decode()
    assert page.status_code == 200, page.status_code
"""


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_failed_logins_in_one_process_throttle_the_account_in_another(client):
    assert not settings.REDIS_URL, "this test is about the embedded default, without Redis"
    assert isinstance(caches["default"], DatabaseCache)
    User.objects.create_user("target@x.test", "the-right-password")
    env = os.environ | {
        "DATABASE_URL": worker.test_database_url(),
        "DEBUG": "true",
        "ALLOWED_HOSTS": "testserver",
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", FAIL_FIVE_TIMES],
        cwd=worker.ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "project.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = client.post(
        "/accounts/login/", {"login": "target@x.test", "password": "the-right-password"}
    )
    assert "Too many failed login attempts" in page.content.decode()
    assert not page.wsgi_request.user.is_authenticated


def test_hot_path_memos_stay_in_process_memory():
    assert isinstance(caches["local"], LocMemCache)
    assert isinstance(caches["api_throttle"], LocMemCache)  # no Redis: counted per process
