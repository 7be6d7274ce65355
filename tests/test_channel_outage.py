"""A channel down for 30 seconds: every alert reaches it once after it recovers, none lost,
none duplicated, and the healthy channel beside it is not held up."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from services.notifier.app import build as build_notifier
from shared.settings import Settings
from tests.conftest import HttpSink, running, wait_for
from tests.factories import make_report, make_signal

OUTAGE_S = 30.0
SIGNALS = 12
TITLES = [f"report {n:02d}" for n in range(SIGNALS)]
EACH_ONCE = Counter(dict.fromkeys(TITLES, 1))


def titles(sink: HttpSink, after: float = 0.0) -> Counter[str]:
    """How often each report title reached ``sink`` in requests made after ``after``."""
    seen: Counter[str] = Counter()
    for request, at in zip(sink.requests, sink.times, strict=True):
        if at >= after:
            body = json.loads(request["body"])
            text = body["title"] + "\n" + body["message"]
            seen.update(title for title in TITLES if title in text)
    return seen


@pytest.mark.slow
async def test_alerts_arrive_once_after_a_30_second_outage(
    make_settings: Callable[..., Settings],
    redis: aioredis.Redis,
    http_sink: HttpSink,
    second_sink: HttpSink,
) -> None:
    http_sink.status = 503
    settings = make_settings(
        notify_urls=[
            f"json://127.0.0.1:{http_sink.port}/down",
            f"json://127.0.0.1:{second_sink.port}/up",
        ],
        claim_idle_ms=2000,
        max_deliveries=40,  # retried for well over the outage, then dead-lettered
    )
    started = time.monotonic()
    async with running(build_notifier(settings)):
        for n in range(SIGNALS):
            signal = make_signal(make_report(id=f"r-outage{n}", title=TITLES[n]))
            await redis.xadd(settings.signals_stream, {"__data__": signal.model_dump_json()})
        await wait_for(lambda: len(titles(second_sink)) == SIGNALS, within=10)
        healthy_done = time.monotonic() - started

        await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        recovered_at = time.monotonic()
        http_sink.status = 200
        await wait_for(lambda: len(titles(http_sink, recovered_at)) == SIGNALS, within=30)
        await asyncio.sleep(2 * settings.claim_idle_ms / 1000)  # time for any duplicate

    assert healthy_done < 10, "the healthy channel was held up by the failing one"
    assert titles(second_sink) == EACH_ONCE
    assert titles(http_sink, recovered_at) == EACH_ONCE
    assert len(titles(http_sink)) == SIGNALS  # it was being tried during the outage
    assert await redis.xlen(settings.dead_letter_stream) == 0
