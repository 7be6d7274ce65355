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
from tests.conftest import (
    HttpSink,
    service_env,
    start_service,
    stop_services,
    stream_entries,
    wait_for,
)
from tests.test_kill_pipeline import all_handled, assert_each_alert_once

pytestmark = pytest.mark.slow
REPORTS = 1000


@pytest.mark.timeout(240)  # recovery after the restart has taken up to a minute here
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
        await wait_for(lambda: client.xlen(settings.deliveries_stream), within=60, interval=0.01)

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
        signals = await stream_entries(client, settings.signals_stream)
        await assert_each_alert_once(client, settings, signals, http_sink)
    finally:
        stop_services(services)
        await client.aclose()
        server.stop()

    assert len(reports) > REPORTS * 0.9
    assert {json.loads(f["__data__"])["id"] for _, f in reports} == {
        s["report"]["id"] for s in signals
    }


async def test_a_service_started_before_redis_waits_for_it(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """`flashpoint run` keeps trying while Redis is unreachable, and starts once it answers."""
    server = EmbeddedRedis(tmp_path / "redis", appendonly=False)  # not started yet
    settings = make_settings(redis_url=server.url)
    log = tmp_path / "classifier.log"
    service = start_service("classifier", service_env(settings, log_level="INFO"), log)
    try:
        await wait_for(lambda: "Redis unreachable; starting again" in log.read_text(), within=30)
        await asyncio.sleep(1)
        assert service.poll() is None, "the service gave up while Redis was down"
        server.start()
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:

            async def reading() -> bool:
                if not await client.exists(settings.reports_stream):
                    return False
                groups = await client.xinfo_groups(settings.reports_stream)
                return any(g["name"] == settings.classifier_group for g in groups)

            await wait_for(reading, within=30, interval=0.2)
        finally:
            await client.aclose()
    finally:
        stop_services([service])
        server.stop()
