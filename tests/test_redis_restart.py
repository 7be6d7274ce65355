"""Redis restarted mid-stream with append-only persistence: the services reconnect by themselves
and nothing is lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.workload import Workload
from shared.embedded import EmbeddedRedis
from shared.settings import Settings
from tests.conftest import HttpSink, service_env, start_service, wait_for
from tests.test_kill_pipeline import all_handled, assert_each_alert_once

pytestmark = pytest.mark.slow
REPORTS = 1000


async def test_services_ride_out_a_redis_restart(
    make_settings: Callable[..., Settings], http_sink: HttpSink, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    server.start()
    settings = make_settings(
        redis_url=server.url, notify_urls=[f"json://127.0.0.1:{http_sink.port}/"]
    )
    env = service_env(
        settings,
        claim_idle_ms=1000,
        notify_urls=",".join(settings.notify_urls),
        log_level="WARNING",
    )
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    services = [
        start_service(n, env, tmp_path / f"{n}.log") for n in ("ingest", "classifier", "notifier")
    ]
    try:
        pipe = client.pipeline(transaction=False)
        for report in Workload(seed=11).reports(REPORTS):
            pipe.xadd(settings.inbox_stream, {"__data__": json.dumps(report)})
        await pipe.execute()
        await wait_for(lambda: client.xlen(settings.signals_stream), within=60, interval=0.01)

        assert not await all_handled(client, settings), "the restart must come mid-stream"
        server.stop()  # SIGTERM: Redis writes its append-only file and exits
        await asyncio.sleep(2)  # the services see connection errors meanwhile
        server.start()  # same port, same data folder
        await client.aclose()
        client = aioredis.Redis.from_url(server.url, decode_responses=True)

        await wait_for(lambda: all_handled(client, settings), within=120, interval=0.5)
        await asyncio.sleep(1)  # anything more would be a duplicate
        assert all(s.poll() is None for s in services), "a service exited instead of reconnecting"

        reports = await client.xrange(settings.reports_stream)
        signals = [
            json.loads(f["__data__"]) for _, f in await client.xrange(settings.signals_stream)
        ]
        await assert_each_alert_once(client, settings, signals, http_sink)
    finally:
        for service in services:
            service.terminate()
        for service in services:
            service.wait(15)
        await client.aclose()
        server.stop()

    assert len(reports) > REPORTS * 0.9
    assert {json.loads(f["__data__"])["id"] for _, f in reports} == {
        s["report"]["id"] for s in signals
    }
