"""The scale-out run (bench/scale.py), small: 40 jobs through two web processes and two worker
units (qcluster + run_engine) on a database, Redis and S3 server of their own, one unit SIGKILLed
whole mid-run and restarted. Every check of the run must pass: every job terminal, each success
captured once and every other job released once, check_ledger clean, no provider job created
twice, every video decodable from the bucket."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

pytestmark = pytest.mark.slow


def _redis_reachable(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure: not reachable
        return False


def test_scale_out_survives_a_killed_worker_unit():
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the scale-out run needs PostgreSQL (DATABASE_URL=postgres://...)")
    if not _redis_reachable("redis://127.0.0.1:6379/8"):
        pytest.skip("the scale-out run needs Redis on 127.0.0.1:6379")
    sys.path.insert(0, str(BENCH))
    import scale

    lines: list[str] = []
    result = scale.run(
        40,
        kills=1,
        timeout=150,
        kill_share=0.2,
        task_time_limit=30,
        time_scale=0.05,
        database=f"studio_test_scale_{os.getpid()}",
        redis_db=8,
        say=lines.append,
    )
    print("\n".join(lines + [result.report()]))
    assert result.ok, "\n".join([result.report(), result.logs])
