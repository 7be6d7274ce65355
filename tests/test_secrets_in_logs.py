"""The whole pipeline with known secrets and two replicas of the classifier and the notifier:
every alert arrives once, and no secret appears in any log line of any service."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from bench.workload import Workload
from shared.embedded import EmbeddedRedis, free_port
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
REDIS_PASSWORD = "redis-pw-5b1e0c9a"
WEBHOOK_TOKEN = "webhook-token-8d2f6a41c3"
CHANNEL_PASSWORD = "channel-pw-e47b19d0"
REPORTS = 200


async def test_no_secret_in_any_log(
    make_settings: Callable[..., Settings], http_sink: HttpSink, tmp_path: Path
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False, password=REDIS_PASSWORD) as server:
        settings = make_settings(redis_url=server.url)
        port = free_port()
        env = service_env(
            settings,
            notify_urls=f"json://alerts:{CHANNEL_PASSWORD}@127.0.0.1:{http_sink.port}/hook",
            webhook_token=WEBHOOK_TOKEN,
            log_level="DEBUG",
            log_format="json",
        )
        logs = {
            name: tmp_path / f"{name}.log"
            for name in ("ingest", "classifier-1", "classifier-2", "notifier-1", "notifier-2")
        }
        processes = [
            start_service(
                name.split("-")[0],
                {**env, "FLASHPOINT_CONSUMER_NAME": name}
                | ({"FLASHPOINT_WEBHOOK_PORT": str(port)} if name == "ingest" else {}),
                log,
            )
            for name, log in logs.items()
        ]
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            reports = Workload(seed=3).reports(REPORTS)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as web:
                await wait_for(lambda: _webhook_up(web), within=30)
                for start in range(0, REPORTS, 50):
                    answer = await web.post(
                        "/v1/reports",
                        json=reports[start : start + 50],
                        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                    )
                    assert answer.status_code == 202, answer.text
                refused = await web.post("/v1/reports", json=reports[0])
                assert refused.status_code == 401

            async def done() -> bool:
                return await client.xlen(settings.inbox_stream) == REPORTS and await all_handled(
                    client, settings
                )

            await wait_for(done, within=120, interval=0.5)
            signals = await stream_entries(client, settings.signals_stream)
            await assert_each_alert_once(client, settings, signals, http_sink)
        finally:
            stop_services(processes)
            await client.aclose()

    text = {name: log.read_text() for name, log in logs.items()}
    assert all(text.values()), "every service wrote log lines"
    for name in ("notifier-1", "notifier-2"):  # both replicas of the notifier took a share
        assert '"alert sent"' in text[name], name
    for name, lines in text.items():
        for secret in (REDIS_PASSWORD, WEBHOOK_TOKEN, CHANNEL_PASSWORD):
            assert secret not in lines, f"{name} logged a secret"
    assert http_sink.requests[0]["headers"]["Authorization"].startswith("Basic ")


async def _webhook_up(web: httpx.AsyncClient) -> bool:
    try:
        return (await web.get("/openapi.json")).status_code == 200
    except httpx.TransportError:
        return False
