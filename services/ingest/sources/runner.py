"""Runs every configured source on its interval, with backoff, and keeps their statistics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from services.ingest.sources.base import (
    ConfiguredSource,
    Publish,
    RetryLater,
    Source,
    SourceContext,
)
from shared.logs import get_logger
from shared.loops import Loop
from shared.settings import Settings
from shared.streams import DeadLetters, as_text

log = get_logger(__name__)

MAX_BACKOFF_S = 3600.0


def stats_key(settings: Settings, name: str) -> str:
    """The Redis hash of one source's statistics."""
    return settings.key("source", name, "stats")


def watched_key(settings: Settings) -> str:
    """The Redis set of sources with a dead man's switch (``silent_after_s``)."""
    return settings.key("sources", "watched")


def backoff(interval_s: float, failures: int) -> float:
    """Seconds to wait after ``failures`` failed polls in a row: doubling, capped at an hour."""
    return float(min(interval_s * 2 ** max(failures - 1, 0), MAX_BACKOFF_S))


class SourceRunner:
    """One task per source; a failing source never affects the others."""

    def __init__(
        self,
        sources: list[ConfiguredSource],
        client: aioredis.Redis,
        settings: Settings,
        publish: Publish,
        dead_letters: DeadLetters,
    ) -> None:
        self.sources = sources
        self.client = client
        self.settings = settings
        self.publish = publish
        self.dead_letters = dead_letters
        self.loops: list[Loop] = []

    async def start(self) -> None:
        """Record which sources have a dead man's switch, then start polling every source."""
        await self.watch()
        self.loops = [self._polling(source).start() for source in self.sources]

    async def stop(self) -> None:
        """Stop polling, letting polls under way finish."""
        await asyncio.gather(*(loop.stop() for loop in self.loops))

    def context(self, name: str) -> SourceContext:
        """What the source called ``name`` is given."""

        async def publish(item: dict[str, Any]) -> object:
            return await self.publish({"source": name, **item})

        async def dead_letter(entry_id: str, error: str, payload: dict[str, str]) -> object:
            log.warning("source item dead-lettered", source=name, item=entry_id, error=error)
            return await self.dead_letters.record(
                origin_stream=f"source:{name}",
                entry_id=entry_id,
                error=error,
                error_type="BadSourceItem",
                payload=payload,
            )

        return SourceContext(name, self.client, self.settings, publish, dead_letter)

    def build(self, configured: ConfiguredSource) -> Source:
        """The plugin instance of a configured source."""
        return configured.plugin(configured.options, self.context(configured.entry.name))

    async def poll_once(
        self, configured: ConfiguredSource, source: Source, failures: int = 0
    ) -> tuple[float, bool]:
        """Poll once and record how it went; return seconds to the next poll and success."""
        name, interval = configured.entry.name, configured.entry.interval_s
        key = stats_key(self.settings, name)
        now = time.time()
        try:
            published = await source.poll()
        except RetryLater as slow_down:
            await self.client.hset(key, mapping={"last_poll": now, "last_error": str(slow_down)})
            log.warning("source asked to slow down", source=name, retry_in_s=slow_down.seconds)
            return max(slow_down.seconds, 1.0), False
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            await self.client.hset(key, mapping={"last_poll": now, "last_error": reason})
            await self.client.hincrby(key, "failures", 1)
            log.warning("source poll failed", source=name, error=reason, failures=failures + 1)
            return backoff(interval, failures + 1), False
        await self.client.hset(key, mapping={"last_poll": now, "last_ok": now, "last_error": ""})
        if published:
            await self.client.hset(key, "last_item", now)
            await self.client.hincrby(key, "published", published)
        return interval, True

    async def watch(self) -> None:
        """Record each source's dead man's switch (``silent_after_s``), starting its clock now,
        and stop watching sources that are no longer configured or no longer ask for it."""
        watched = watched_key(self.settings)
        wanted = {s.entry.name: s.entry.silent_after_s for s in self.sources}
        for name in [as_text(n) for n in await self.client.smembers(watched)]:
            if wanted.get(name) is None:
                await self.client.srem(watched, name)
                await self.client.hdel(stats_key(self.settings, name), "silent_after_s")
        for name, limit in wanted.items():
            if limit is not None:
                await self.client.hset(
                    stats_key(self.settings, name),
                    mapping={"silent_after_s": limit, "watched_since": time.time()},
                )
                await self.client.sadd(watched, name)

    def _polling(self, configured: ConfiguredSource) -> Loop:
        source = self.build(configured)
        failures = 0

        async def poll() -> float:
            nonlocal failures
            delay, ok = await self.poll_once(configured, source, failures)
            failures = 0 if ok else failures + 1
            return delay

        return Loop(f"source {configured.entry.name}", poll)
