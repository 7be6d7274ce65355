"""`flashpoint status`: the pipeline at a glance, with an exit code for cron and healthchecks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import redis.asyncio as aioredis

from services.status import read_status, render
from shared.settings import Settings
from shared.streams import ensure_group


async def test_healthy_pipeline_is_all_well(settings: Settings, redis: aioredis.Redis) -> None:
    """With every group present and nothing pending, the status says all well."""
    for stream, group in (
        (settings.inbox_stream, "ingest"),
        (settings.reports_stream, "classifier"),
        (settings.signals_stream, "notifier"),
    ):
        await ensure_group(redis, stream, group)
    status = await read_status(redis, settings, max_lag=1000)
    assert status.problems == []
    assert render(status).endswith("all well")


async def test_lag_stale_pending_missing_group_and_dead_letters_need_attention(
    settings: Settings, redis: aioredis.Redis
) -> None:
    """Lag over the limit, a stale pending entry, a missing group and dead letters are flagged."""
    await ensure_group(redis, settings.inbox_stream, "ingest")
    await ensure_group(redis, settings.reports_stream, "classifier")
    for n in range(5):
        await redis.xadd(settings.inbox_stream, {"text": f"report {n}"})
    await redis.xreadgroup("ingest", "dead-consumer", {settings.inbox_stream: ">"}, count=1)
    await redis.xadd(settings.dead_letter_stream, {"__data__": "{}"})
    await asyncio.sleep(0.05)  # the entry has now been pending 50 times the claim time
    stale = settings.model_copy(update={"claim_idle_ms": 1})
    status = await read_status(redis, stale, max_lag=2)
    problems = " | ".join(status.problems)
    assert "ingest: lag 4 over 2" in problems
    assert "ingest: an entry pending" in problems
    assert (
        f"notifier: consumer group notifier on {settings.signals_stream} does not exist" in problems
    )
    assert "1 dead letters to inspect" in problems
    assert "consumer dead-consumer: 1 pending" in render(status)


def test_exit_codes(settings: Settings) -> None:
    """The command exits 1 when something needs attention and 2 when Redis is unreachable."""
    env = {
        **os.environ,
        "FLASHPOINT_REDIS_URL": settings.redis_url,
        "FLASHPOINT_INBOX_STREAM": settings.inbox_stream,
    }
    attention = subprocess.run(
        [sys.executable, "-m", "services.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert attention.returncode == 1
    assert "ATTENTION" in attention.stdout
    env["FLASHPOINT_REDIS_URL"] = "redis://127.0.0.1:1/0"
    down = subprocess.run(
        [sys.executable, "-m", "services.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 2
    assert "Redis is unreachable" in down.stdout
