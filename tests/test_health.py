"""Health endpoints: alive, ready (Redis, consumer loop, lag) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

import httpx
import redis.asyncio as aioredis

from services.classifier.app import build as build_classifier
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for
from tests.factories import make_report


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_health_ready_and_metrics(
    make_settings: Callable[..., Settings], redis: aioredis.Redis
) -> None:
    """/healthz answers, /readyz turns 503 when lag passes the limit, /metrics counts entries."""
    settings = make_settings(health_port=free_port(), ready_max_lag=5, sample_every_s=0.1)
    base = f"http://127.0.0.1:{settings.health_port}"
    async with (
        running(build_classifier(settings)) as service,
        httpx.AsyncClient(base_url=base, timeout=5) as client,
    ):
        await wait_for(lambda: _answers(client, "/readyz", 200), within=10)
        assert (await client.get("/healthz")).json()["status"] == "alive"

        report = make_report(id="r-counted", title="", text="Artillery shelled the border.")
        await redis.xadd(settings.reports_stream, {"__data__": report.model_dump_json()})
        await wait_for(lambda: stream_entries(redis, settings.signals_stream))
        # The batch is counted once its signals are published: wait for the count itself.
        processed = (
            f'flashpoint_entries_total{{outcome="processed",service="classifier",'
            f'stream="{settings.reports_stream}"}} 1.0'
        )
        metrics = await wait_for(lambda: _metrics_with(client, processed))
        assert "flashpoint_handler_seconds_bucket" in metrics
        assert "flashpoint_consumer_lag" in metrics

        for sub in service.broker.subscribers:  # the consumer falls behind
            await sub.stop()
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(10):
                pipe.xadd(settings.reports_stream, {"__data__": "{}"})
            await pipe.execute()
        await asyncio.sleep(0.3)  # a fresh sample, after all ten entries
        not_ready = await wait_for(lambda: _answers(client, "/readyz", 503), within=10)
        problems = not_ready.json()["problems"]
        lag = next(p for p in problems if p.startswith(settings.reports_stream))
        assert re.fullmatch(r".*: lag (9|10) over 5", lag)  # one may be read as the loop stops
        assert "the consumer loop is not running" in problems


async def _answers(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response | None:
    try:
        response = await client.get(path)
    except httpx.TransportError:
        return None
    return response if response.status_code == status else None


async def _metrics_with(client: httpx.AsyncClient, line: str) -> str | None:
    text = (await client.get("/metrics")).text
    return text if line in text else None
