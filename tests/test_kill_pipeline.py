"""Each service killed with SIGKILL in the middle of 2,000 reports, then restarted: every report
is classified, and every alert reaches the test channel exactly once."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.workload import Workload
from services.ingest.normalize import canonical_url
from shared.settings import Settings
from tests.conftest import (
    HttpSink,
    service_env,
    settled_alerts,
    start_service,
    stop_services,
    stream_entries,
    wait_for,
)

pytestmark = pytest.mark.slow
REPORTS = 2000


class Pipeline:
    """The three services as processes, each restartable."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.env = service_env(
            settings,
            claim_idle_ms=1000,
            notify_urls=",".join(settings.notify_urls),
            notify_timeout_s=5,
            log_level="WARNING",
        )
        self.log = log
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        self.processes[name] = start_service(name, self.env, self.log)

    def kill(self, name: str) -> None:
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(10)

    def stop(self) -> None:
        stop_services(self.processes.values())


async def test_each_service_killed_mid_stream(
    make_settings: Callable[..., Settings],
    redis: aioredis.Redis,
    http_sink: HttpSink,
    tmp_path: Path,
) -> None:
    settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
    reports = Workload(seed=6).reports(REPORTS)
    pipe = redis.pipeline(transaction=False)
    for report in reports:
        pipe.xadd(settings.inbox_stream, {"__data__": json.dumps(report)})
    await pipe.execute()

    pipeline = Pipeline(settings, tmp_path / "services.log")
    try:
        for name in ("ingest", "classifier", "notifier"):
            pipeline.start(name)
        await kill_when(pipeline, "ingest", lambda: redis.xlen(settings.reports_stream), 300)
        await kill_when(pipeline, "classifier", lambda: redis.xlen(settings.signals_stream), 700)
        await kill_when(pipeline, "notifier", lambda: _count(http_sink), 300)
        await wait_for(lambda: all_handled(redis, settings), within=180, interval=0.5)
    finally:
        pipeline.stop()

    signals = await stream_entries(redis, settings.signals_stream)
    published = {
        json.loads(f["__data__"])["id"] for _, f in await redis.xrange(settings.reports_stream)
    }
    classified = {s["report"]["id"] for s in signals}
    assert classified == published, "a report ingest published was never classified"
    assert len(published) > REPORTS * 0.9  # only near-duplicates of the workload are dropped

    await assert_each_alert_once(redis, settings, signals, http_sink)
    assert await redis.xlen(settings.dead_letter_stream) == 0
    assert {canonical_url(r["url"]) for r in reports} >= {s["report"]["url"] for s in signals}


async def kill_when(
    pipeline: Pipeline, name: str, progress: Callable[[], Awaitable[int] | int], at_least: int
) -> None:
    """SIGKILL ``name`` once ``progress`` reaches ``at_least``, then start it again."""

    async def reached() -> bool:
        value = progress()
        return (await value if not isinstance(value, int) else value) >= at_least

    await wait_for(reached, within=120, interval=0.02)
    pipeline.kill(name)
    pipeline.start(name)


async def all_handled(redis: aioredis.Redis, settings: Settings) -> bool:
    """Every stage has acknowledged everything in its input stream."""
    for stream, group in (
        (settings.inbox_stream, settings.ingest_group),
        (settings.reports_stream, settings.classifier_group),
        (settings.signals_stream, settings.notifier_group),
    ):
        info = await redis.xinfo_stream(stream)
        groups = [g for g in await redis.xinfo_groups(stream) if g["name"] == group]
        if not groups:  # not created yet, or not yet back after a Redis restart
            return False
        [found] = groups
        if found["pending"] or found["last-delivered-id"] != info["last-generated-id"]:
            return False
    return True


async def assert_each_alert_once(
    redis: aioredis.Redis, settings: Settings, signals: list[dict[str, Any]], sink: HttpSink
) -> None:
    """Every alert reached the channel exactly once, but for the few whose sending was
    interrupted by the fault: recorded as uncertain and not resent (the default). An alert
    whose only record is ``duplicate`` was marked sent, so it must have arrived."""
    alerted = {s["report"]["id"]: s["report"]["url"] for s in signals if s["label"] != "none"}
    settled = await settled_alerts(redis, settings)
    assert set(settled) == set(alerted), "an alert was never settled"
    uncertain = {alerted[i] for i, outcome in settled.items() if outcome == "uncertain"}
    received = Counter(url for body in sink.json_bodies() for url in urls_in(body))
    assert [url for url, count in received.items() if count > 1] == [], "an alert came twice"
    assert set(alerted.values()) - uncertain <= set(received) <= set(alerted.values())
    # a notifier sends from two handlers at once (new entries, and the claimer's retries),
    # so one fault interrupts at most two sends on the one channel
    assert len(uncertain) <= 2


def urls_in(body: dict[str, str]) -> list[str]:
    """The report links an alert's text carries."""
    return re.findall(r"https://\S+", body["message"])


def _count(sink: HttpSink) -> int:
    return len(sink.requests)
