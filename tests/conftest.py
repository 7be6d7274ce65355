"""Fixtures: a real Redis server, isolated settings, running services and loopback sinks."""

from __future__ import annotations

import asyncio
import faulthandler
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from faststream import FastStream

from shared.embedded import EmbeddedRedis
from shared.proc import die_with_parent
from shared.service import Service
from shared.settings import Settings

WATCHDOG_MARGIN_S = 60.0


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """End the whole run if one test, with its set-up and teardown, hangs.

    pytest-timeout disarms its timer as soon as a test fails (its ``pytest_exception_interact``
    hook, meant for debuggers), so a teardown that hangs after a failure would stall CI for
    good. This watchdog stays armed until the test's teardown is over.
    """
    marker = item.get_closest_marker("timeout")
    timeout = marker.args[0] if marker and marker.args else item.config.getini("timeout")
    limit = float(timeout or 0) + WATCHDOG_MARGIN_S

    def bite() -> None:
        sys.__stderr__.write(f"\n{item.nodeid} still running after {limit:.0f} s; stacks:\n")
        faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
        os._exit(3)

    watchdog = threading.Timer(limit, bite)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FLASHPOINT_REDIS_URL when set, else an embedded redis-server for the session."""
    configured = os.environ.get("FLASHPOINT_REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    """A factory of settings whose streams and keys no other test shares."""

    def create(**overrides: Any) -> Settings:
        tag = f"t{uuid.uuid4().hex[:10]}"
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "inbox_stream": f"{tag}:inbox",
            "reports_stream": f"{tag}:reports",
            "signals_stream": f"{tag}:signals",
            "deliveries_stream": f"{tag}:deliveries",
            "dead_letter_stream": f"{tag}:dead-letters",
            "key_prefix": tag,
            "consumer_name": "test-consumer",
            "poll_interval_ms": 50,
            "claim_idle_ms": 300,
            "max_deliveries": 3,
            "notify_urls": ["console://"],
            "notify_backoff_s": 0.01,
            "notify_attempts": 2,
            "log_format": "json",
        }
        values.update(overrides)
        return Settings(**values)

    return create


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Isolated settings with the test defaults."""
    return make_settings()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain Redis client, as any outside program would use."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@asynccontextmanager
async def running(built: tuple[FastStream, Service]) -> AsyncIterator[Service]:
    """Run a built service app in this event loop for the duration of the block."""
    app, service = built
    async with app:
        yield service


async def wait_for(
    condition: Callable[[], Any], within: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


async def stream_entries(client: aioredis.Redis, stream: str) -> list[dict[str, Any]]:
    """Every entry of ``stream``, with its ``__data__`` JSON decoded."""
    entries = await client.xrange(stream)
    return [json.loads(fields["__data__"]) for _, fields in entries]


async def settled_alerts(client: aioredis.Redis, settings: Settings) -> dict[str, str]:
    """Signal id -> how its alert ended on the one channel, from the delivery records:
    ``sent``; ``uncertain`` (its sending was interrupted and, by default, not repeated); or
    ``duplicate`` alone, when it was marked sent but the fault struck before its ``sent``
    record was published, so its retry found it sent."""
    settled: dict[str, str] = {}
    for record in await stream_entries(client, settings.deliveries_stream):
        signal_id, outcome = record["signal_id"], record["outcome"]
        if outcome in ("sent", "uncertain"):
            assert settled.get(signal_id) in (None, "duplicate"), f"{signal_id} settled twice"
            settled[signal_id] = outcome
        elif outcome == "duplicate":
            settled.setdefault(signal_id, outcome)
    return settled


class HttpSink:
    """A loopback HTTP server that records every request, answering with ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.status = 200
        self.statuses: list[int] = []
        """Answers for the next requests, in order, before falling back to ``status``."""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                sink.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                sink.times.append(time.monotonic())
                self.send_response(sink.statuses.pop(0) if sink.statuses else sink.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def json_bodies(self) -> list[dict[str, Any]]:
        """Bodies of the recorded requests, parsed as JSON."""
        return [json.loads(r["body"]) for r in self.requests]


@contextmanager
def serving(sink: HttpSink) -> Iterator[HttpSink]:
    """Serve ``sink`` for the block."""
    sink.thread.start()
    try:
        yield sink
    finally:
        sink.server.shutdown()
        sink.server.server_close()


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """A recording HTTP server on 127.0.0.1."""
    with serving(HttpSink()) as sink:
        yield sink


@pytest.fixture
def second_sink() -> Iterator[HttpSink]:
    """Another recording HTTP server, for a second channel."""
    with serving(HttpSink()) as sink:
        yield sink


@pytest.fixture
def repo_root() -> Path:
    """The repository's top folder."""
    return Path(__file__).resolve().parent.parent


def service_env(settings: Settings, **extra: object) -> dict[str, str]:
    """An environment that points a `flashpoint run` process at ``settings``'s streams."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHPOINT_")}
    names = (
        "redis_url",
        "inbox_stream",
        "reports_stream",
        "signals_stream",
        "deliveries_stream",
        "dead_letter_stream",
        "key_prefix",
    )
    env |= {f"FLASHPOINT_{name.upper()}": str(getattr(settings, name)) for name in names}
    env |= {f"FLASHPOINT_{name.upper()}": str(value) for name, value in extra.items()}
    return env


def stop_services(processes: Iterable[subprocess.Popen[bytes]], timeout_s: float = 15) -> None:
    """SIGTERM every process, then wait for each (killing one that outlives the timeout)."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_service(service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`flashpoint run SERVICE` as a separate process, its output appended to ``log``; it gets
    SIGTERM if the test session dies (a timeout ends it with ``os._exit``)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", service],
            env=env,
            stdout=output,
            stderr=output,
            preexec_fn=die_with_parent,
        )
