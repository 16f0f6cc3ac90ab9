"""`Idempotency-Key` on job creation, scoped to the team.

The first request with a key claims it (a row with no answer yet); the job and the key's answer
commit in one transaction, so a key either names its job or names nothing. The same key again:
with the same request, the first answer (while the first is in flight, 409); with another
request, 422. A refused request (bad input, no credits) releases its key: nothing was made, and
the caller may fix the cause and send the same request again. A claim left by a process that
died mid-request lapses after STALE_AFTER. Keys are kept KEEP_FOR, then swept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from studio.models import IdempotencyKey, Team

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
STALE_AFTER = timedelta(minutes=5)  # far beyond a request's longest life (an image fetch)
KEEP_FOR = timedelta(hours=48)  # "at least 24 h"


class KeyRefused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Replay:
    status_code: int
    answer: dict


def request_digest(method: str, path: str, fields, files: dict[str, bytes]) -> str:
    """What makes two requests "the same": method, path, the parsed fields and each file's
    bytes — not the raw body, whose multipart boundary changes on every retry."""
    canonical = {
        "method": method,
        "path": path,
        "fields": fields,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    encoded = json.dumps(canonical, sort_keys=True, cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise KeyRefused(
            400,
            "invalid_idempotency_key",
            f"{HEADER} must be 1–{MAX_KEY_LENGTH} printable ASCII characters.",
        )
    return key


def claim(team: Team, key: str, digest: str) -> IdempotencyKey | Replay:
    """This request's claim on the key, or the first request's answer to replay."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(
                team=team, key=key, request_digest=digest, started_at=now
            )
    except IntegrityError:
        pass
    held = IdempotencyKey.objects.filter(team=team, key=key).first()
    if held is None:  # released between our insert and our read: the caller may try again
        raise KeyRefused(409, "idempotency_key_in_use", _IN_FLIGHT)
    if held.request_digest != digest:
        raise KeyRefused(
            422,
            "idempotency_key_reused",
            f"This {HEADER} was first used with a different request; use a new key.",
        )
    if held.answered_at is not None:
        return Replay(held.status_code, held.answer)
    # A claim whose request died without answering: take it over, one taker only.
    if IdempotencyKey.objects.filter(
        pk=held.pk, answered_at__isnull=True, started_at__lt=now - STALE_AFTER
    ).update(started_at=now):
        held.started_at = now
        return held
    raise KeyRefused(409, "idempotency_key_in_use", _IN_FLIGHT)


_IN_FLIGHT = f"A request with this {HEADER} is still being processed; retry in a moment."


def answer(held: IdempotencyKey, status_code: int, body: dict, job=None) -> None:
    """Record the answer: call inside the transaction that made the job."""
    stored = json.loads(json.dumps(body, cls=DjangoJSONEncoder))
    IdempotencyKey.objects.filter(pk=held.pk).update(
        answered_at=timezone.now(), status_code=status_code, answer=stored, job=job
    )


def release(held: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=held.pk, answered_at__isnull=True).delete()


def sweep(now=None) -> int:
    cutoff = (now or timezone.now()) - KEEP_FOR
    return IdempotencyKey.objects.filter(started_at__lt=cutoff).delete()[0]
