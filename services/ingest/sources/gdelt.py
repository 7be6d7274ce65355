"""The GDELT DOC 2.0 API: article lists (JSON mode) for a query, polled politely.

GDELT gives titles, links, times and outlets, not article text, so a report's text is its
title. The base URL is an option, so a local server speaking GDELT's format can stand in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from services.ingest.sources.base import SourceContext
from services.ingest.sources.http import FetchError, fetch

SEEN_TTL_S = 7 * 24 * 3600
LANGUAGES = {
    "English": "en",
    "Thai": "th",
    "Khmer": "km",
    "French": "fr",
    "Spanish": "es",
    "German": "de",
    "Russian": "ru",
    "Ukrainian": "uk",
    "Arabic": "ar",
    "Chinese": "zh",
    "Vietnamese": "vi",
    "Indonesian": "id",
    "Malay": "ms",
    "Burmese": "my",
    "Japanese": "ja",
}


class GdeltOptions(BaseModel):
    """Options of a ``gdelt`` source."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="GDELT query, e.g. (Thailand OR Cambodia) clash")
    base_url: HttpUrl = HttpUrl("https://api.gdeltproject.org/api/v2/doc/doc")
    max_records: int = Field(75, ge=1, le=250)
    timespan: str = Field("1h", pattern=r"^\d+(min|h|d|w)$")
    timeout_s: float = Field(20.0, gt=0, le=120)
    max_bytes: int = Field(5_000_000, ge=1_000)


class GdeltSource:
    """One GDELT query."""

    Options = GdeltOptions

    def __init__(self, options: GdeltOptions, context: SourceContext) -> None:
        self.options = options
        self.context = context
        self.seen_key = context.key("seen")

    async def poll(self) -> int:
        """Ask for the latest articles and publish those not published before."""
        answer = await fetch(
            str(self.options.base_url),
            headers={"User-Agent": "Flashpoint/0.1"},
            params={
                "query": self.options.query,
                "mode": "ArtList",
                "format": "json",
                "maxrecords": self.options.max_records,
                "timespan": self.options.timespan,
                "sort": "DateDesc",
            },
            timeout_s=self.options.timeout_s,
            max_bytes=self.options.max_bytes,
        )
        try:
            articles = json.loads(answer.body or b"{}").get("articles", [])
        except (json.JSONDecodeError, AttributeError) as error:
            msg = f"{self.options.base_url}: not a GDELT article list: {error}"
            raise FetchError(msg) from error
        published = 0
        for article in articles:
            item = to_item(article)
            if item is None:
                await self.context.dead_letter(
                    "article", "GDELT article without a title or link", {"item": str(article)}
                )
                continue
            key = hashlib.sha256(item["url"].encode()).hexdigest()[:24]
            if await self.context.redis.sadd(self.seen_key, key):
                await self.context.publish(item)
                published += 1
        await self.context.redis.expire(self.seen_key, SEEN_TTL_S)
        return published


def to_item(article: Any) -> dict[str, Any] | None:
    """A raw report from one GDELT article, or None when it lacks a title or link."""
    if not isinstance(article, dict) or not article.get("title") or not article.get("url"):
        return None
    item: dict[str, Any] = {
        "title": article["title"],
        "text": article["title"],
        "url": article["url"],
        "source": article.get("domain") or "gdelt",
    }
    seen = article.get("seendate")
    if isinstance(seen, str):
        with contextlib.suppress(ValueError):
            item["published_at"] = (
                datetime.strptime(seen, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).isoformat()
            )
    if language := LANGUAGES.get(str(article.get("language", ""))):
        item["language"] = language
    return item
