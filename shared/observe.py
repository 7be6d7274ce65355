"""What a service shows on-call staff: /healthz, /readyz and Prometheus /metrics.

Counters and the latency histogram are updated as entries are handled; lag and pending entries
are sampled from Redis every few seconds by the same task that decides readiness.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from shared.loops import Loop

ENTRIES = Counter(
    "flashpoint_entries_total",
    "Stream entries handled, by outcome.",
    ["service", "stream", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "flashpoint_handler_seconds",
    "Time to handle one entry (or one batch).",
    ["service", "stream"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge("flashpoint_consumer_lag", "Entries not yet read by the group.", ["service", "stream"])
PENDING = Gauge(
    "flashpoint_pending_entries", "Entries read but not acknowledged.", ["service", "stream"]
)
DELIVERIES = Counter(
    "flashpoint_deliveries_total",
    "Notifier decisions per channel and outcome.",
    ["channel", "outcome"],
)


@dataclass
class Readiness:
    """The last judgement of whether the service can do its work, and why not."""

    problems: list[str] = field(default_factory=lambda: ["not sampled yet"])
    sampled_at: float = 0.0


class Observer:
    """Samples Redis and the consumer loop, and serves the three endpoints."""

    def __init__(
        self,
        service: str,
        client: aioredis.Redis,
        streams: Callable[[], list[tuple[str, str]]],
        loop_alive: Callable[[], bool],
        max_lag: int,
    ) -> None:
        self.service = service
        self.client = client
        self.streams = streams
        self.loop_alive = loop_alive
        self.max_lag = max_lag
        self.readiness = Readiness()

    async def sample(self) -> Readiness:
        """Check Redis, the consumer loop and the lag; update the gauges."""
        problems: list[str] = []
        try:
            await self.client.ping()
            for stream, group in self.streams():
                lag, pending = await _lag_and_pending(self.client, stream, group)
                LAG.labels(self.service, stream).set(lag)
                PENDING.labels(self.service, stream).set(pending)
                if lag > self.max_lag:
                    problems.append(f"{stream}: lag {lag} over {self.max_lag}")
        except (aioredis.RedisError, OSError) as error:
            problems.append(f"Redis unreachable: {error}")
        if not self.loop_alive():
            problems.append("the consumer loop is not running")
        self.readiness = Readiness(problems=problems, sampled_at=time.time())
        return self.readiness

    def sampling(self, every_s: float) -> Loop:
        """A loop that samples every ``every_s`` seconds (start it, stop it)."""

        async def sample_once() -> float:
            await self.sample()
            return every_s

        return Loop(f"{self.service} health sampling", sample_once)

    def app(self) -> FastAPI:
        """The HTTP application with /healthz, /readyz and /metrics."""
        app = FastAPI(title=f"Flashpoint {self.service} health", docs_url=None, redoc_url=None)

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "alive", "service": self.service}

        @app.get("/readyz")
        async def readyz() -> JSONResponse:
            ready = self.readiness
            body = {
                "ready": not ready.problems,
                "problems": ready.problems,
                "sampled_at": ready.sampled_at,
            }
            return JSONResponse(body, status_code=503 if ready.problems else 200)

        @app.get("/metrics")
        async def metrics() -> PlainTextResponse:
            return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        return app


async def _lag_and_pending(client: aioredis.Redis, stream: str, group: str) -> tuple[int, int]:
    groups = await client.xinfo_groups(stream)
    info = next(
        (
            g
            for g in groups
            if (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]) == group
        ),
        None,
    )
    if info is None:
        return 0, 0
    if info.get("lag") is not None:
        return int(info["lag"]), int(info["pending"])
    last = info["last-delivered-id"]
    last = last.decode() if isinstance(last, bytes) else last
    newer = await client.xrange(stream, min=f"({last}", max="+", count=100_000)
    return len(newer or []), int(info["pending"])


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the FastStream app owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def quiet_server(app: FastAPI, host: str, port: int) -> QuietServer:
    """A server for ``app`` to run inside a service's own event loop."""
    return QuietServer(uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off"))
