"""The dead man's switch: warn the operators when a source has gone quiet.

Ingest records, for every source configured with ``silent_after_s``, when it last published
an item (``last_item``) and since when it is watched. The notifier checks those records on an
interval and sends one warning per silence to the operators' subscription; a source that comes
back is announced once too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from apprise import NotifyFormat

from services.ingest.sources.runner import stats_key, watched_key
from services.notifier.deliver import Deliverer, Message
from services.notifier.formats import Rendered, Style
from services.notifier.route import Router
from shared.logs import get_logger
from shared.settings import Settings
from shared.streams import as_text

log = get_logger(__name__)


@dataclass(frozen=True)
class Silence:
    """A source that has published nothing for longer than it should."""

    source: str
    since: float
    """When it last published, or when watching began if it never has."""
    limit_s: float

    def id(self) -> str:
        """Identifies this silence: one warning each, however many notifiers check."""
        return f"silence:{self.source}:{self.since:.0f}"

    def warning(self, now: float) -> str:
        """What the operators read."""
        quiet_for = _duration(now - self.since)
        last = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"Source {self.source!r} has published nothing for {quiet_for} "
            f"(expected within {_duration(self.limit_s)}; quiet since {last}). "
            "Check `flashpoint sources list` for its last poll and error."
        )


def silence_of(source: str, stats: Mapping[str, str], now: float) -> Silence | None:
    """The silence of a source given its statistics hash, or None if it is not silent."""
    limit = float(stats.get("silent_after_s") or 0)
    if not limit:
        return None
    since = max(float(stats.get("last_item") or 0), float(stats.get("watched_since") or 0))
    return Silence(source, since, limit) if now - since > limit else None


class DeadMansSwitch:
    """Checks the watched sources and warns the operators' subscription of silences."""

    def __init__(
        self, client: aioredis.Redis, settings: Settings, router: Router, deliverer: Deliverer
    ) -> None:
        self.client = client
        self.settings = settings
        self.router = router
        self.deliverer = deliverer

    async def check(self, now: float) -> list[Silence]:
        """Warn of every new silence; return the silences found (new or already told)."""
        silences = []
        watched = await self.client.smembers(watched_key(self.settings))
        for name in sorted(as_text(n) for n in watched):
            raw = await self.client.hgetall(stats_key(self.settings, name))
            stats = {as_text(k): as_text(v) for k, v in raw.items()}
            silence = silence_of(name, stats, now)
            if silence is None:
                await self._announce_recovery(name, now)
                continue
            silences.append(silence)
            await self._warn(silence, now)
        return silences

    async def _warn(self, silence: Silence, now: float) -> None:
        key = self.settings.key("deadman", silence.source)
        told = await self.client.hget(key, "told")
        if told is not None and as_text(told) == silence.id():
            return
        log.warning("source silent", source=silence.source, since=silence.since)
        if await self._send(silence.id(), "Source silent", silence.warning(now)):
            await self.client.hset(key, mapping={"told": silence.id(), "quiet": 1})

    async def _announce_recovery(self, source: str, now: float) -> None:
        key = self.settings.key("deadman", source)
        if await self.client.hget(key, "quiet") is None:
            return
        text = f"Source {source!r} is publishing again."
        log.info("source publishing again", source=source)
        if await self._send(f"recovered:{source}:{now:.0f}", "Source back", text):
            await self.client.hdel(key, "quiet")

    async def _send(self, message_id: str, title: str, text: str) -> bool:
        """Send to the operators' subscription; True when every channel took it."""
        name = self.settings.operators_subscription
        subscription = await self.router.store.get(name)
        if subscription is None:
            log.warning("no operators subscription to warn", subscription=name, warning=text)
            return False

        def render(style: Style) -> Rendered:
            return Rendered(f"[Flashpoint] {title}", text, NotifyFormat.TEXT)

        failures = await self.deliverer.deliver_message(
            Message(message_id, "none", render), name, self.router.channels(subscription.urls)
        )
        return not failures


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 2:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
