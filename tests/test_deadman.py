"""The dead man's switch: a source that falls silent warns the operators, once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as aioredis

from services.ingest.app import build as build_ingest
from services.ingest.sources.runner import stats_key, watched_key
from services.notifier.app import build as build_notifier
from services.notifier.deadman import silence_of
from services.notifier.store import SubscriptionStore
from services.notifier.subscriptions import Subscription
from shared.settings import Settings
from tests.conftest import HttpSink, running, wait_for


class TestSilenceOf:
    def test_a_source_without_a_limit_is_never_silent(self) -> None:
        assert silence_of("wire", {"last_item": "0"}, now=1e9) is None

    def test_quiet_for_longer_than_the_limit(self) -> None:
        stats = {"silent_after_s": "60", "last_item": "1000", "watched_since": "900"}
        silence = silence_of("wire", stats, now=1061)
        assert silence is not None
        assert (silence.since, silence.limit_s) == (1000.0, 60.0)
        assert "published nothing for 61 s" in silence.warning(1061)

    def test_recent_item_or_recent_watch_is_not_silent(self) -> None:
        assert silence_of("wire", {"silent_after_s": "60", "last_item": "1000"}, now=1059) is None
        stats = {"silent_after_s": "60", "last_item": "10", "watched_since": "1000"}
        assert silence_of("wire", stats, now=1030) is None  # the clock restarts with ingest


async def test_ingest_records_the_switch_and_each_item(
    make_settings: Callable[..., Settings], redis: aioredis.Redis, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        f"  - {{name: quiet, type: jsonl, interval_s: 0.1, silent_after_s: 5,"
        f" options: {{path: '{inbox}'}}}}\n"
        f"  - {{name: plain, type: jsonl, interval_s: 0.1, options: {{path: '{inbox}'}}}}\n"
    )
    settings = make_settings(sources_file=sources)
    async with running(build_ingest(settings)):
        key = stats_key(settings, "quiet")
        stats = await wait_for(lambda: redis.hgetall(key))
        assert stats["silent_after_s"] == "5.0"
        assert await redis.smembers(watched_key(settings)) == {"quiet"}
        (inbox / "a.jsonl").write_text('{"text": "Shelling resumed near the border."}\n')
        await wait_for(lambda: redis.hget(key, "last_item"))


async def test_operators_hear_of_a_silence_once_and_of_the_recovery(
    make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
) -> None:
    settings = make_settings(notify_urls=[], deadman_check_s=0.1)
    store = SubscriptionStore(redis, settings)
    url = f"json://127.0.0.1:{http_sink.port}/"
    await store.put(Subscription(name="operators", urls=(url,)))
    key = stats_key(settings, "wire")
    await redis.hset(key, mapping={"silent_after_s": 60, "watched_since": time.time() - 120})
    await redis.sadd(watched_key(settings), "wire")
    async with running(build_notifier(settings)):
        await wait_for(lambda: http_sink.requests)
        await _sleep_checks(settings, 5)
        [warning] = http_sink.json_bodies()
        assert "Source 'wire' has published nothing for 2 min" in warning["message"]

        await redis.hset(key, "last_item", time.time())  # the source is back
        await wait_for(lambda: len(http_sink.requests) == 2)
        await _sleep_checks(settings, 5)
    bodies = http_sink.json_bodies()
    assert len(bodies) == 2
    assert bodies[1]["message"] == "Source 'wire' is publishing again."


async def _sleep_checks(settings: Settings, checks: int) -> None:
    await asyncio.sleep(settings.deadman_check_s * checks)
