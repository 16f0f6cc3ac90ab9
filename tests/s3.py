"""A real S3 server for tests: moto's (`moto_server`), over HTTP on 127.0.0.1, with media storage
pointed at a bucket of its own per test, configured as production configures it
(project.object_storage). Nothing is mocked inside boto3: every call crosses the socket."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from project.object_storage import s3_storage
from tests.receivers import free_port

REGION = "us-east-1"
CREDENTIALS = {"access_key_id": "studio-test-key", "secret_access_key": "studio-test-secret"}
MOTO_SERVER = Path(sys.executable).with_name("moto_server")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server for the whole session: its endpoint URL. Killed at the end."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(endpoint + "/", timeout=1)  # any answer: it is listening
                break
            except httpx.TransportError:
                if time.monotonic() > give_up:
                    raise RuntimeError("moto_server did not answer within 30 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@dataclass
class Bucket:
    """The test's bucket, read with boto3 directly (not through the code under test)."""

    client: object
    name: str
    endpoint: str

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


def make_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )


@pytest.fixture
def s3_media(settings, s3_server):
    """Media storage on a fresh bucket of the S3 server for one test. Django's `settings` fixture
    restores STORAGES afterwards, and its setting_changed signal drops the cached default_storage
    both ways (django.test.signals.storages_changed), so the next test is on local disk again."""
    client = make_client(s3_server)
    bucket = Bucket(client, f"studio-test-{uuid.uuid4().hex[:16]}", s3_server)
    client.create_bucket(Bucket=bucket.name)
    use_bucket(settings, bucket)
    return bucket


def use_bucket(settings, bucket: Bucket, *, presigned_ttl: int = 300) -> None:
    """Point the default storage at `bucket`, as S3_* variables would."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_storage(
            bucket=bucket.name,
            endpoint_url=bucket.endpoint,
            region=REGION,
            presigned_ttl=presigned_ttl,
            **CREDENTIALS,
        ),
    }
