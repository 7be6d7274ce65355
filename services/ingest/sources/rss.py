"""RSS 2.0, Atom and RDF feeds, fetched politely and parsed with feedparser.

Conditional GET (ETag and Last-Modified) makes an unchanged feed cost a 304; 429 and 503 honour
Retry-After; documents are capped in size; which items were already published is kept in
Redis, so a restart does not publish old items again.
"""

from __future__ import annotations

import calendar
import hashlib
from datetime import UTC, datetime
from typing import Any

import feedparser
import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from services.ingest.sources.base import SourceContext
from services.ingest.sources.http import fetch
from shared.logs import get_logger
from shared.streams import as_text

log = get_logger(__name__)

SEEN_TTL_S = 30 * 24 * 3600


class RssOptions(BaseModel):
    """Options of an ``rss`` source."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl
    timeout_s: float = Field(15.0, gt=0, le=120)
    max_bytes: int = Field(5_000_000, ge=1_000, le=50_000_000)
    user_agent: str = "Flashpoint/0.1 (+conflict news alerts)"
    language: str | None = None


class RssSource:
    """One feed URL."""

    Options = RssOptions

    def __init__(self, options: RssOptions, context: SourceContext) -> None:
        self.options = options
        self.context = context
        self.state_key = context.key("http")
        self.seen_key = context.key("seen")

    async def poll(self) -> int:
        """Fetch the feed if it changed and publish the items not published before."""
        document = await self._fetch()
        if document is None:
            return 0
        if not document.strip():
            await self.context.dead_letter("document", f"{self.options.url}: empty document", {})
            return 0
        parsed = feedparser.parse(document)
        if parsed.bozo and not parsed.entries:
            reason = getattr(parsed, "bozo_exception", "unreadable feed")
            await self.context.dead_letter(
                "document",
                f"{self.options.url}: not a feed: {reason}",
                {"document": document[:2000].decode("utf-8", errors="replace")},
            )
            return 0
        published = 0
        for entry in parsed.entries:
            item = to_item(entry, self.options.language or parsed.feed.get("language"))
            if item is None:
                await self.context.dead_letter(
                    _entry_key(entry),
                    f"{self.options.url}: item has no text or title",
                    {"item": str(dict(entry))[:2000]},
                )
                continue
            if await self.context.redis.sadd(self.seen_key, _entry_key(entry)):
                await self.context.publish(item)
                published += 1
        await self.context.redis.expire(self.seen_key, SEEN_TTL_S)
        return published

    async def _fetch(self) -> bytes | None:
        state = await self.context.redis.hgetall(self.state_key)
        headers = {"User-Agent": self.options.user_agent}
        stored = {as_text(k): as_text(v) for k, v in state.items()}
        if etag := stored.get("etag"):
            headers["If-None-Match"] = etag
        if modified := stored.get("last_modified"):
            headers["If-Modified-Since"] = modified
        answer = await fetch(
            str(self.options.url),
            headers=headers,
            timeout_s=self.options.timeout_s,
            max_bytes=self.options.max_bytes,
        )
        if answer.status == 304:
            return None
        await self._remember(answer.headers)
        return answer.body

    async def _remember(self, headers: httpx.Headers) -> None:
        for name, header in (("etag", "ETag"), ("last_modified", "Last-Modified")):
            if header in headers:
                await self.context.redis.hset(self.state_key, name, headers[header])


def to_item(entry: Any, language: str | None) -> dict[str, Any] | None:
    """A raw report from a feed entry, or None when it has neither text nor title."""
    title = entry.get("title", "")
    text = entry.get("summary", "") or ""
    if entry.get("content"):
        text = max((c.get("value", "") for c in entry["content"]), key=len) or text
    if not text.strip():
        text = title
    if not text.strip():
        return None
    item: dict[str, Any] = {"title": title, "text": text, "url": entry.get("link") or None}
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if stamp:
        item["published_at"] = datetime.fromtimestamp(calendar.timegm(stamp), UTC).isoformat()
    if language:
        item["language"] = language
    return item


def _entry_key(entry: Any) -> str:
    identity = entry.get("id") or entry.get("link") or entry.get("title", "")
    return hashlib.sha256(str(identity).encode()).hexdigest()[:24]
