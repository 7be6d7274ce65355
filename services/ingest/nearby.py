"""Near-duplicates: the same story republished with small edits, found by SimHash.

Each report gets a 64-bit SimHash of its words. Stories within ``MAX_DISTANCE`` bits of each
other are the same story (edits of a sentence or a dateline move a wire story by 3-4 bits;
different stories differ by 18 or more). Six bands of the hash index them in Redis: by the
pigeonhole principle two hashes within five bits share a band, so only a few candidates are
compared.
"""

from __future__ import annotations

import hashlib
import re

import redis.asyncio as aioredis

from shared.messages import Report
from shared.settings import Settings

MAX_DISTANCE = 5
MIN_WORDS = 20
NUMBER_WEIGHT = 3
BAND_BITS = (11, 11, 11, 11, 10, 10)
_WORD = re.compile(r"\w+")


def simhash(text: str) -> int:
    """A 64-bit SimHash of the text's words (case and punctuation ignored).

    Numbers weigh three times a word: "two soldiers killed" and "twelve soldiers killed"
    are different news.
    """
    totals = [0] * 64
    for word in _WORD.findall(text.casefold()):
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        weight = NUMBER_WEIGHT if any(char.isdigit() for char in word) else 1
        for bit in range(64):
            totals[bit] += weight if value >> bit & 1 else -weight
    return sum(1 << bit for bit in range(64) if totals[bit] > 0)


def long_enough(text: str) -> bool:
    """Whether a text has words enough to compare by SimHash."""
    return len(_WORD.findall(text)) >= MIN_WORDS


def distance(a: int, b: int) -> int:
    """How many bits two hashes differ in."""
    return (a ^ b).bit_count()


def bands(value: int) -> list[int]:
    """The six slices of a hash that index it."""
    slices, shift = [], 0
    for width in BAND_BITS:
        slices.append((value >> shift) & ((1 << width) - 1))
        shift += width
    return slices


class StoryIndex:
    """Stories seen in the dedup window, by SimHash band, with their corroborating sources."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    async def story_of(self, report: Report) -> str | None:
        """The id of an earlier story this report is a near-duplicate of, if any.

        Texts under ``MIN_WORDS`` words have too few words for SimHash to tell stories apart,
        so they are never merged.
        """
        if not long_enough(report.text):
            return None
        value = simhash(report.text)
        async with self.client.pipeline(transaction=False) as pipe:
            for band, part in enumerate(bands(value)):
                pipe.hgetall(self.settings.key("simhash", str(band), f"{part:04x}"))
            found = await pipe.execute()
        for candidates in found:
            for story, stored in candidates.items():
                story_id = story.decode() if isinstance(story, bytes) else story
                if story_id != report.id and distance(value, int(stored)) <= MAX_DISTANCE:
                    return story_id
        return None

    async def add(self, report: Report) -> None:
        """Index a new story (long enough to compare)."""
        if not long_enough(report.text):
            return
        value = simhash(report.text)
        window = self.settings.dedup_window_s
        async with self.client.pipeline(transaction=False) as pipe:
            for band, part in enumerate(bands(value)):
                key = self.settings.key("simhash", str(band), f"{part:04x}")
                pipe.hset(key, report.id, str(value))
                pipe.expire(key, window)
            await pipe.execute()

    async def corroborate(self, story_id: str, report: Report) -> int:
        """Record ``report`` as another outlet carrying the story; return how many carry it."""
        key = sources_key(self.settings, story_id)
        await self.client.hset(key, report.source, report.url or report.id)
        await self.client.expire(key, self.settings.dedup_window_s)
        return int(await self.client.hlen(key))


def sources_key(settings: Settings, story_id: str) -> str:
    """The Redis hash of the other outlets that carried a story."""
    return settings.key("story", story_id, "sources")
