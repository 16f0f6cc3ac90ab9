"""The README's API example, run as written against a live server, a real worker and the job
engine: a token from the command line, a webhook endpoint and a job made with curl, the signed
webhook verified by the README's own receiver. Only what the README asks the reader to fill in
(their e-mail, team, photo, and a free port in place of 9000) is substituted."""

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
from django_q.conf import Conf

from studio.models import Job
from tests import worker
from tests.conftest import make_image_bytes

SECTION = (
    (worker.ROOT / "README.md").read_text().split("### Example: a job from the command line")[1]
)
RECEIVER = re.search(r"```python\n(.*?)```", SECTION, re.S)[1]
COMMANDS = re.search(r"```bash\n(.*?)```", SECTION, re.S)[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_readme_example_works_as_written(
    live_server, personas, settings, monkeypatch, tmp_path
):
    monkeypatch.setattr(Conf, "SYNC", False)  # the web side enqueues; the worker renders
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.0/8"]
    settings.PUBLIC_BASE_URL = live_server.url
    port = str(free_port())
    receiver = tmp_path / "receiver.py"
    receiver.write_text(RECEIVER.replace("9000", port))
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(make_image_bytes("JPEG", (800, 500)))
    script = (
        COMMANDS.replace("http://localhost:8000", live_server.url)
        .replace("you@example.com", personas.owner.email)
        .replace('"My team"', f'"{personas.team.name}"')
        .replace("receiver.py", str(receiver))
        .replace("photo.jpg", str(photo))
        .replace("9000", port)
    )
    output = tmp_path / "receiver.log"
    env = os.environ | {
        "DATABASE_URL": worker.test_database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8",
        "PUBLIC_BASE_URL": live_server.url,
    }
    env.pop("REDIS_URL", None)
    workers_env = {"OUTBOUND_ALLOW_NETWORKS": "127.0.0.0/8", "PUBLIC_BASE_URL": live_server.url}
    with worker.running_workers(workers_env), output.open("w") as log:
        shell = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", script + "\nwait"],
            cwd=worker.ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and "job.succeeded" not in output.read_text():
                assert shell.poll() is None, output.read_text()  # the receiver keeps it running
                time.sleep(0.3)
        finally:
            os.killpg(shell.pid, 15)
            shell.wait()
    text = output.read_text()
    job = Job.objects.get()
    assert f"job.succeeded {job.pk} succeeded http" in text, text
    assert job.creator == personas.owner and job.state == "succeeded"
    created = re.search(r'\{"id": "([0-9a-f-]+)"', text)
    assert created and created[1] == str(job.pk)  # curl printed the job it made
    assert Path(settings.MEDIA_ROOT, job.video.name).stat().st_size > 10_000
