"""Replicas share a stream through their group; SIGTERM stops a service cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from shared.settings import Settings
from tests.conftest import service_env, start_service, wait_for
from tests.factories import make_report

pytestmark = pytest.mark.slow
REPORTS = 1000
READ_COUNT = 100  # small enough that a SIGTERM lands while reports are still waiting


def start_classifier(settings: Settings, consumer: str, log: Path) -> subprocess.Popen[bytes]:
    env = service_env(settings, consumer_name=consumer, graceful_timeout_s=3, read_count=READ_COUNT)
    return start_service("classifier", env, log)


async def publish_reports(redis: aioredis.Redis, settings: Settings) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(REPORTS):
            report = make_report(id=f"r-{n:05d}", title="", text=f"Artillery shelled village {n}.")
            pipe.xadd(settings.reports_stream, {"__data__": report.model_dump_json()})
        await pipe.execute()


async def signal_ids(redis: aioredis.Redis, settings: Settings) -> list[str]:
    import json

    entries = await redis.xrange(settings.signals_stream)
    return [json.loads(fields["__data__"])["report"]["id"] for _, fields in entries]


async def test_two_replicas_share_the_work(
    settings: Settings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Two classifiers on one group: every report classified once, both did some of it."""
    replicas = [start_classifier(settings, f"replica-{n}", tmp_path / "log") for n in (1, 2)]
    try:
        # Both started before any report arrives: one started a second earlier would classify
        # all of them before the other has compiled its rules.
        log = tmp_path / "log"
        await wait_for(lambda: log.read_text().count("started successfully") == 2, within=60)
        await publish_reports(redis, settings)
        await wait_for(lambda: _count_at_least(redis, settings, REPORTS), within=60)
    finally:
        for replica in replicas:
            replica.terminate()
        for replica in replicas:
            replica.wait(15)
    ids = await signal_ids(redis, settings)
    assert len(set(ids)) == REPORTS
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    consumers = await redis.xinfo_consumers(settings.reports_stream, "classifier")
    assert {c["name"] for c in consumers} == {"replica-1", "replica-2"}


async def test_sigterm_finishes_what_it_holds_and_exits(
    settings: Settings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """On SIGTERM the classifier exits in time; what it read but did not start is retried at
    once by the next run (FastStream drops a read that returns after the stop began)."""
    await publish_reports(redis, settings)
    classifier = start_classifier(settings, "graceful", tmp_path / "log")
    await wait_for(lambda: _count_at_least(redis, settings, 100), within=30)
    started = time.monotonic()
    classifier.send_signal(signal.SIGTERM)
    code = classifier.wait(15)
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 3 + 3  # the graceful timeout plus start-up slack
    pending = await redis.xpending(settings.reports_stream, "classifier")
    assert pending["pending"] <= READ_COUNT
    classified = len(await signal_ids(redis, settings))
    assert classified < REPORTS, "it stopped part-way, as asked"

    restarted = start_classifier(settings, "graceful", tmp_path / "log")
    try:
        await wait_for(lambda: _count_at_least(redis, settings, REPORTS), within=20)
    finally:
        restarted.terminate()
        restarted.wait(15)
    assert len(set(await signal_ids(redis, settings))) == REPORTS


async def _count_at_least(redis: aioredis.Redis, settings: Settings, n: int) -> bool:
    count: Any = await redis.xlen(settings.signals_stream)
    return int(count) >= n


async def test_two_ingest_replicas_publish_each_item_once(
    settings: Settings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Exact duplicates spread over two ingest replicas still come out once."""
    unique = 200
    replicas = [
        start_service(
            "ingest", service_env(settings, consumer_name=f"ingest-{n}"), tmp_path / "log"
        )
        for n in (1, 2)
    ]
    try:
        # Both replicas run before anything is published: a replica that is still starting
        # would otherwise find the inbox already drained by the other.
        await wait_for(lambda: _started(tmp_path / "log") >= 2, within=60)
        async with redis.pipeline(transaction=False) as pipe:
            for copy in range(3):
                for n in range(unique):
                    pipe.xadd(
                        settings.inbox_stream,
                        {
                            "text": f"Report number {n}: shelling near village {n * 7919}.",
                            "url": f"https://news.example.org/{n}?utm_source=copy{copy}",
                        },
                    )
            await pipe.execute()
        await wait_for(lambda: _drained(redis, settings), within=60)
    finally:
        for replica in replicas:
            replica.terminate()
        for replica in replicas:
            replica.wait(15)
    ids = [fields["__data__"] for _, fields in await redis.xrange(settings.reports_stream)]
    assert len(ids) == unique
    consumers = await redis.xinfo_consumers(settings.inbox_stream, "ingest")
    assert all(c["pending"] == 0 for c in consumers)
    assert len(consumers) == 2


def _started(log: Path) -> int:
    """How many services logged that their app started."""
    return log.read_text().count("app started successfully") if log.exists() else 0


async def _drained(redis: aioredis.Redis, settings: Settings) -> bool:
    groups = await redis.xinfo_groups(settings.inbox_stream)
    group = next((g for g in groups if g["name"] == "ingest"), None)
    if group is None or group["pending"]:
        return False
    last = group["last-delivered-id"]
    newer = await redis.xrange(settings.inbox_stream, min=f"({last}", max="+", count=1)
    return not newer
