"""Near-duplicates: one wire story from several outlets is published once, as one story."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.ingest.app import build as build_ingest
from services.ingest.nearby import MAX_DISTANCE, distance, long_enough, simhash, sources_key
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for

STORY = (
    "Thai and Cambodian troops exchanged artillery fire near the Preah Vihear temple on "
    "Tuesday, the Thai army said, in the heaviest fighting since the accord collapsed."
)
EDITED = [
    STORY.replace("the accord", "the peace accord"),
    "BANGKOK (Wire) - " + STORY,
    STORY.upper().replace(",", " -"),
]
OTHER = (
    "Thai and Cambodian troops exchanged gunfire near the Ta Muen Thom temple on Wednesday, "
    "the Thai army said, after a night of shelling."
)


class TestSimHash:
    def test_edited_copies_are_near(self) -> None:
        """A word added, a dateline, case and punctuation stay near; another story does not.

        The threshold is kept tight on purpose: merging two different incidents would hide an
        alert, so heavier rewrites are treated as separate reports.
        """
        for edited in EDITED:
            assert distance(simhash(STORY), simhash(edited)) <= MAX_DISTANCE, edited
        assert distance(simhash(STORY), simhash(OTHER)) > 3 * MAX_DISTANCE


async def test_republished_story_goes_out_once_with_its_outlets(
    settings: Settings, redis: aioredis.Redis
) -> None:
    """Four outlets with small edits: one report; the others are recorded as its sources."""
    async with running(build_ingest(settings)):
        await redis.xadd(settings.inbox_stream, {"source": "wire-a", "text": STORY})
        await wait_for(lambda: stream_entries(redis, settings.reports_stream))
        for n, edited in enumerate(EDITED):
            await redis.xadd(settings.inbox_stream, {"source": f"outlet-{n}", "text": edited})
        await redis.xadd(settings.inbox_stream, {"source": "outlet-x", "text": OTHER})
        reports = await wait_for(
            lambda: _at_least(stream_entries(redis, settings.reports_stream), 2)
        )
        story = reports[0]["id"]
        outlets = await wait_for(lambda: _hlen_at_least(redis, sources_key(settings, story), 3))
    assert [r["source"] for r in reports] == ["wire-a", "outlet-x"]
    assert outlets == 3


async def _at_least(entries: object, n: int) -> list[dict[str, str]] | None:
    found: list[dict[str, str]] = await entries  # type: ignore[misc]
    return found if len(found) >= n else None


async def _hlen_at_least(redis: aioredis.Redis, key: str, n: int) -> int | None:
    count = int(await redis.hlen(key))
    return count if count >= n else None


def test_different_numbers_or_short_texts_are_not_merged() -> None:
    """Different casualty figures make different news; short texts are never compared."""
    two = STORY + " Shells killed 2 soldiers and wounded 5 villagers in Kantharalak."
    twelve = STORY + " Shells killed 12 soldiers and wounded 40 villagers in Kantharalak."
    assert distance(simhash(two), simhash(twelve)) > MAX_DISTANCE
    assert not long_enough("Report number 5: shelling near village 39595.")
