"""Ingest in batches: duplicates and near-duplicates inside one batch, claims released when
publishing fails, entry ids for the dedup tokens, and the near-duplicate index."""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from services.ingest.app import Ingest, PublishError
from services.ingest.app import build as build_ingest
from services.ingest.dedup import Deduplicator
from services.ingest.nearby import (
    MAX_DISTANCE,
    BatchStories,
    StoryIndex,
    distance,
    simhash,
    slices,
    sources_key,
)
from services.ingest.normalize import to_report
from services.ingest.sources.runner import stats_key
from shared.messages import RawReport, utc_now
from shared.service import Service
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for
from tests.test_nearby import EDITED, OTHER, STORY

ESCALATION = (
    "Thai and Cambodian troops exchanged artillery fire near Preah Vihear on Tuesday; "
    "two soldiers were wounded and villagers in Si Sa Ket fled to shelters."
)


@pytest.fixture
async def ingest(settings: Settings) -> AsyncIterator[Ingest]:
    """The ingest's batch processing, without the app around it."""
    service = Service(settings, "ingest")
    yield Ingest(service, settings)
    await service.close()


def raws(*items: dict[str, str]) -> list[RawReport]:
    return [RawReport.model_validate(item) for item in items]


def entry_ids(count: int, first: int = 1) -> list[str]:
    return [f"{first + n}-0" for n in range(count)]


async def test_copies_in_one_batch_give_one_report(
    ingest: Ingest, settings: Settings, redis: aioredis.Redis
) -> None:
    """Same URL (other tracking parameters) or same text (other case and spacing) inside one
    batch: the first copy is published, the others dropped and counted."""
    batch = raws(
        {"source": "wire", "text": ESCALATION, "url": "https://example.org/a?utm_source=x"},
        {"source": "copy", "text": "Another wording.", "url": "https://EXAMPLE.org/a#top"},
        {"source": "copy", "text": "  " + ESCALATION.upper(), "url": "https://example.org/b"},
        {"source": "wire", "text": "Rice exports rose 4% in October."},
    )

    await ingest.process(batch, entry_ids(len(batch)))

    reports = await stream_entries(redis, settings.reports_stream)
    assert [(r["source"], r["url"]) for r in reports] == [
        ("wire", "https://example.org/a"),
        ("wire", None),
    ]
    assert await redis.hget(stats_key(settings, "copy"), "duplicates") == "2"


async def test_near_duplicates_in_one_batch_give_one_story(
    ingest: Ingest, settings: Settings, redis: aioredis.Redis
) -> None:
    """A wire story and its edited copies read together: one report, the copies recorded
    as its other outlets; another story in the same batch is published too."""
    items = [{"source": "wire-a", "text": STORY}]
    items += [{"source": f"outlet-{n}", "text": text} for n, text in enumerate(EDITED)]
    items.append({"source": "outlet-x", "text": OTHER})

    await ingest.process(raws(*items), entry_ids(len(items)))

    reports = await stream_entries(redis, settings.reports_stream)
    assert [r["source"] for r in reports] == ["wire-a", "outlet-x"]
    outlets = await redis.hgetall(sources_key(settings, reports[0]["id"]))
    assert sorted(outlets) == ["outlet-0", "outlet-1", "outlet-2"]
    later = to_report(RawReport(text=EDITED[0], source="later"), fetched_at=utc_now())
    [found] = await ingest.stories.lookup([later])
    assert found.story == reports[0]["id"], "the story was indexed"


async def test_failed_publication_releases_the_batch_claims(
    ingest: Ingest, settings: Settings, redis: aioredis.Redis
) -> None:
    """When the reports stream refuses the batch, nothing stays claimed: a replay of the
    same reports (new entries) is published, not dropped as a duplicate of the failure."""
    batch = raws(
        {"text": ESCALATION, "url": "https://example.org/a"},
        {"text": "A second report about shelling near the border."},
        {"text": ESCALATION.upper(), "url": "https://example.org/a"},  # duplicate of the first
    )
    await redis.set(settings.reports_stream, "broken")

    with pytest.raises(PublishError, match="WRONGTYPE"):
        await ingest.process(batch, entry_ids(3))

    assert await redis.keys(settings.key("seen", "*")) == []
    await redis.delete(settings.reports_stream)
    await ingest.process(batch, entry_ids(3, first=10))
    assert len(await stream_entries(redis, settings.reports_stream)) == 2


async def test_a_failed_batch_is_retried_entry_by_entry(
    settings: Settings, redis: aioredis.Redis
) -> None:
    """Publishing a batch fails once: its entries are retried one at a time by the claimer,
    through the same code, and come out once (the copy in the batch still a duplicate)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(settings.inbox_stream, {"source": "wire", "text": ESCALATION})
        pipe.xadd(settings.inbox_stream, {"source": "copy", "text": ESCALATION.upper()})
        pipe.xadd(settings.inbox_stream, {"source": "wire", "text": STORY})
        await pipe.execute()
    app, service = build_ingest(settings)
    published = service.publish_many
    calls: list[int] = []

    async def fails_once(stream: str, messages: Sequence[BaseModel]) -> None:
        calls.append(len(messages))
        if len(calls) == 1:
            raise ConnectionError("connection reset")
        await published(stream, messages)

    service.publish_many = fails_once  # type: ignore[method-assign]
    async with running((app, service)):
        await wait_for(lambda: _settled(redis, settings, reports=2), within=15)
    reports = await stream_entries(redis, settings.reports_stream)
    assert [r["text"] for r in reports] == [ESCALATION, STORY]
    assert calls == [2, 1, 1], "the batch, then each new report on its own"
    assert await redis.hget(stats_key(settings, "copy"), "duplicates") == "1"


async def test_a_redelivered_batch_is_not_its_own_duplicate(
    ingest: Ingest, settings: Settings, redis: aioredis.Redis
) -> None:
    """The same entries processed again (their ack was lost) are published again, at least
    once; the same reports from other entries are duplicates."""
    batch = raws({"text": STORY}, {"text": ESCALATION, "url": "https://example.org/a"})

    await ingest.process(batch, entry_ids(2))
    await ingest.process(batch, entry_ids(2))
    await ingest.process(batch, entry_ids(2, first=5))

    assert len(await stream_entries(redis, settings.reports_stream)) == 4


async def test_claims_in_order_within_a_call(ingest: Ingest, redis: aioredis.Redis) -> None:
    """One claim call behaves like claiming the reports one after the other."""
    now = utc_now()
    first = to_report(RawReport(text="Shelling near the border.", url="https://a.org/1"), now)
    same_url = to_report(RawReport(text="Other words.", url="https://a.org/1"), now)
    same_text = to_report(RawReport(text="shelling  near the BORDER.", url="https://a.org/2"), now)
    dedup: Deduplicator = ingest.dedup

    owners = await dedup.first_seen_many([first, same_url, same_text], ["e1", "e2", "e3"])

    assert owners == [None, "e1", "e1"]
    assert await dedup.first_seen_many([first], ["e1"]) == [None], "the owner may claim again"
    await dedup.release_many([first, same_url], ["e1", "e2"])
    assert await dedup.first_seen_many([same_text], ["e3"]) == [None]


async def test_batch_with_an_invalid_entry_uses_the_right_entry_ids(
    settings: Settings, redis: aioredis.Redis
) -> None:
    """Entries read together, one invalid: it is dead-lettered, and each valid report is
    claimed with the id of its own entry, so the copy is a duplicate of the right one."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xadd(settings.inbox_stream, {"text": ESCALATION})
        pipe.xadd(settings.inbox_stream, {"title": "no text"})
        pipe.xadd(settings.inbox_stream, {"text": ESCALATION.upper()})
        first, _, _ = await pipe.execute()
    async with running(build_ingest(settings)):
        letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
        reports = await wait_for(lambda: stream_entries(redis, settings.reports_stream))
        await wait_for(lambda: _nothing_pending(redis, settings))
    assert "text: Field required" in letters[0]["error"]
    assert len(reports) == 1
    text_keys = await redis.keys(settings.key("seen", "text", "*"))
    assert await redis.get(text_keys[0]) == f"{first} {reports[0]['id']}"


async def _settled(redis: aioredis.Redis, settings: Settings, reports: int) -> bool:
    """``reports`` reports published and no inbox entry left pending."""
    published = await redis.xlen(settings.reports_stream)
    return bool(published >= reports and await _nothing_pending(redis, settings))


async def _nothing_pending(redis: aioredis.Redis, settings: Settings) -> bool:
    summary = await redis.xpending(settings.inbox_stream, settings.ingest_group)
    return not summary["pending"]


@pytest.mark.parametrize("prepared", [True, False], ids=["mget", "script"])
async def test_index_finds_every_hash_within_the_distance(ingest: Ingest, prepared: bool) -> None:
    """Hashes up to MAX_DISTANCE bits from an indexed story, the bits anywhere, find it;
    hashes further away do not (the slices' pigeonhole guarantee, end to end). Both reads
    answer so: the MGET of keys named in Python, once :meth:`StoryIndex.prepare` has found
    no layout before, and the script that also reads those layouts."""
    if prepared:
        await ingest.stories.prepare()
    assert ingest.stories.reads_layouts_before(time.time()) is not prepared
    rng = random.Random(7)
    stories = [(f"r-story{n}", rng.getrandbits(64)) for n in range(40)]
    await ingest.stories.add(stories)
    near, far = [], []
    for story_id, value in stories:
        for flips in range(MAX_DISTANCE + 1):
            bits = rng.sample(range(64), flips)
            near.append((story_id, value ^ sum(1 << bit for bit in bits)))
        bits = rng.sample(range(64), MAX_DISTANCE + 1)
        far.append((story_id, value ^ sum(1 << bit for bit in bits)))

    found = await ingest.stories.nearest([(f"r-probe{n}", v) for n, (_, v) in enumerate(near)])
    missed = await ingest.stories.nearest([(f"r-probe{n}", v) for n, (_, v) in enumerate(far)])

    assert found == [story_id for story_id, _ in near]
    assert missed == [None] * len(far)
    assert await ingest.stories.nearest([stories[0]]) == [None], "never the report itself"


def test_batch_index_finds_what_comparing_every_pair_finds() -> None:
    """A batch's own stories, found by band, are exactly those a comparison of every pair
    finds: the earliest story within MAX_DISTANCE, never the report itself."""
    rng = random.Random(11)
    roots = [rng.getrandbits(64) for _ in range(30)]
    hashes = []
    for n in range(600):
        flips = rng.sample(range(64), rng.randint(0, 2 * MAX_DISTANCE))
        hashes.append((f"r-{n}", rng.choice(roots) ^ sum(1 << bit for bit in flips)))
    hashes += hashes[:20]  # a redelivered report is not its own near-duplicate
    index, merged = BatchStories(), 0
    stories: list[tuple[str, int]] = []
    for report_id, value in hashes:
        expected = next(
            (
                other
                for other, other_value in stories
                if other != report_id and distance(value, other_value) <= MAX_DISTANCE
            ),
            None,
        )
        assert index.nearest(report_id, value) == expected
        if expected is None:
            index.add(report_id, value)
            stories.append((report_id, value))
        merged += expected is not None
    assert 100 < merged < len(hashes) - 30, "both outcomes are exercised"


async def test_stories_indexed_before_the_upgrade_are_found(
    ingest: Ingest, settings: Settings, redis: aioredis.Redis
) -> None:
    """A story the previous layout indexed (six bands) is still found for one window."""
    value = simhash(STORY)
    for band, part in enumerate(_old_bands(value)):
        await redis.hset(settings.key("simhash", str(band), f"{part:04x}"), "r-old", str(value))

    assert await ingest.stories.nearest([("r-new", simhash(EDITED[0]))]) == ["r-old"]


async def test_stories_in_the_slice_hashes_before_are_found_for_one_window(
    ingest: Ingest, settings: Settings, redis: aioredis.Redis
) -> None:
    """A story the slice hashes of the layout before indexed is found until one window has
    passed since this layout first started; on a Redis that never held them, they are not
    read at all."""
    value = simhash(STORY)
    await ingest.stories.prepare()  # nothing of the layouts before yet: never read them
    assert await redis.get(settings.key("story-slices", "since")) == "0"
    for number, part in enumerate(slices(value)):
        await redis.hset(settings.key("story-index", str(number), f"{part:06x}"), "r-old", value)
    probe = [("r-new", simhash(EDITED[0]))]
    assert await ingest.stories.nearest(probe) == [None]

    await redis.delete(settings.key("story-slices", "since"))
    await ingest.stories.prepare()  # an upgrade: the hashes are there, read them for a window
    assert await ingest.stories.nearest(probe) == ["r-old"]
    await redis.set(
        settings.key("story-slices", "since"), str(time.time() - settings.dedup_window_s - 1)
    )
    assert await ingest.stories.nearest(probe) == [None]  # the script reads the marker
    await ingest.stories.prepare()  # a replica started after the window
    assert not ingest.stories.reads_layouts_before(time.time())
    assert await ingest.stories.nearest(probe) == [None]


async def test_both_reads_give_the_earliest_story_of_several(
    ingest: Ingest, settings: Settings
) -> None:
    """Where several indexed stories are within MAX_DISTANCE of a hash, the MGET and the
    script read their candidates in the same order and give the same story."""
    rng = random.Random(5)
    roots = [rng.getrandbits(64) for _ in range(20)]
    stories = []
    for n in range(400):
        bits = rng.sample(range(64), rng.randint(0, 3))
        stories.append((f"r-story{n}", rng.choice(roots) ^ sum(1 << bit for bit in bits)))
    for at in range(0, len(stories), 100):
        await ingest.stories.add(stories[at : at + 100])
    probes = [(f"r-probe{n}", rng.choice(roots) ^ 1 << rng.randrange(64)) for n in range(200)]
    script = StoryIndex(ingest.stories.client, settings)
    await ingest.stories.prepare()
    assert script.reads_layouts_before(time.time())
    assert not ingest.stories.reads_layouts_before(time.time())

    by_script = await script.nearest(probes)
    by_mget = await ingest.stories.nearest(probes)

    assert by_mget == by_script
    assert all(found is not None for found in by_mget)
    assert len(set(by_mget)) > 20, "the answer depends on the order candidates are read"


def _old_bands(value: int) -> list[int]:
    parts, shift = [], 0
    for width in (11, 11, 11, 11, 10, 10):
        parts.append((value >> shift) & ((1 << width) - 1))
        shift += width
    return parts


_WORD = re.compile(r"\w+")


def reference_simhash(text: str) -> int:
    """SimHash as first written: one loop over the 64 bits per word."""
    totals = [0] * 64
    for word in _WORD.findall(text.casefold()):
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
        weight = 3 if any(char.isdigit() for char in word) else 1
        for bit in range(64):
            totals[bit] += weight if value >> bit & 1 else -weight
    return sum(1 << bit for bit in range(64) if totals[bit] > 0)


WORDS = ["the", "ceasefire", "12", "a7", "²", "Ä", "ß", "ทหาร"]


@given(st.lists(st.sampled_from(WORDS)).map(" ".join))
def test_simhash_matches_the_reference(text: str) -> None:
    """The fast SimHash gives exactly the hashes stored by the first implementation."""
    assert simhash(text) == reference_simhash(text)


@given(st.text(max_size=300))
def test_simhash_matches_the_reference_on_any_text(text: str) -> None:
    """Also on arbitrary text (other scripts, digits of all kinds, empty)."""
    assert simhash(text) == reference_simhash(text)


def test_simhash_of_known_texts_is_unchanged() -> None:
    """Hashes already stored in Redis stay comparable with new ones."""
    for text in (STORY, OTHER, *EDITED, "", "9 " * 10_000):
        assert simhash(text) == reference_simhash(text)


def test_index_scripts_name_keys_like_python(settings: Settings) -> None:
    """The lookup script builds key names itself; they must be the ones ``add`` writes."""
    index = StoryIndex(aioredis.Redis(), settings)
    assert index.slice_keys(0x123456 | (0x7 << 22) | (0x1FFFFF << 43)) == [
        f"{settings.key_prefix}:story-slices:0:123456",
        f"{settings.key_prefix}:story-slices:1:000007",
        f"{settings.key_prefix}:story-slices:2:1fffff",
    ]


def test_lookup_reads_each_slice_and_every_slice_one_bit_away() -> None:
    """The keys a lookup reads are the keys ``add`` writes for the hash and for each hash one
    bit away in a slice, under any prefix (a ``%`` in it included)."""
    index = StoryIndex(aioredis.Redis(), Settings(key_prefix="fp%d"))
    value = random.Random(3).getrandbits(64)
    expected = set(index.slice_keys(value))
    for bit in range(64):
        expected.add(index.slice_keys(value ^ 1 << bit)[_slice_of(bit)])
    keys = index.probe_keys(value)
    assert len(keys) == len(set(keys)) == 67
    assert set(keys) == expected
    assert all(key.startswith("fp%d:story-slices:") for key in keys)


def _slice_of(bit: int) -> int:
    return 0 if bit < 22 else 1 if bit < 43 else 2
