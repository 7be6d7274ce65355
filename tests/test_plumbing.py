"""Stream plumbing on a real Redis: retries, claiming, dead letters, late groups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis
from faststream import FastStream
from pydantic import BaseModel

from services.classifier.app import build as build_classifier
from services.ingest.app import build as build_ingest
from shared.messages import Report, utc_now
from shared.service import Service
from shared.settings import Settings
from shared.streams import PermanentError
from tests.conftest import running, stream_entries, wait_for


class Item(BaseModel):
    n: int


def counting_service(
    settings: Settings, stream: str, fail_on: set[int], permanent: bool = False
) -> tuple[tuple[FastStream, Service], list[int], dict[int, int]]:
    """A service whose handler records each item and fails on the ones in ``fail_on``."""
    service = Service(settings, "classifier", "workers")
    done: list[int] = []
    attempts: dict[int, int] = {}

    async def handle(item: Item) -> None:
        attempts[item.n] = attempts.get(item.n, 0) + 1
        if item.n in fail_on:
            raise (PermanentError if permanent else RuntimeError)(f"item {item.n} is poison")
        done.append(item.n)

    service.consume(stream, handle, description="test items")
    return (service.app(), service), done, attempts


async def publish_items(redis: aioredis.Redis, stream: str, numbers: range) -> None:
    for n in numbers:
        await redis.xadd(stream, {"__data__": json.dumps({"n": n})})


class TestRetryAndDeadLetter:
    async def test_failing_entry_is_retried_then_dead_lettered(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A handler that keeps failing gets max_deliveries tries, then a dead letter."""
        stream = settings.key("items")
        built, done, attempts = counting_service(settings, stream, fail_on={3})
        await publish_items(redis, stream, range(10))
        async with running(built):
            letters = await wait_for(
                lambda: stream_entries(redis, settings.dead_letter_stream), within=15
            )
            await wait_for(lambda: len(done) == 9)
        assert sorted(done) == [0, 1, 2, 4, 5, 6, 7, 8, 9]
        assert attempts[3] == settings.max_deliveries
        letter = letters[0]
        assert letter["origin_stream"] == stream
        assert letter["deliveries"] == settings.max_deliveries
        assert letter["error"] == "item 3 is poison"
        assert letter["error_type"] == "RuntimeError"
        assert json.loads(letter["payload"]["__data__"]) == {"n": 3}
        assert (await redis.xpending(stream, "workers"))["pending"] == 0

    async def test_permanent_error_is_dead_lettered_at_once(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A PermanentError is not retried."""
        stream = settings.key("items")
        built, done, attempts = counting_service(settings, stream, fail_on={1}, permanent=True)
        await publish_items(redis, stream, range(3))
        async with running(built):
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
            await wait_for(lambda: len(done) == 2)
        assert attempts[1] == 1
        assert letters[0]["deliveries"] == 1

    async def test_entry_whose_consumer_keeps_dying_is_dead_lettered_unrun(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """An entry delivered max_deliveries times already is dead-lettered by the claimer."""
        stream = settings.key("items")
        built, _, attempts = counting_service(settings, stream, fail_on=set())
        await redis.xgroup_create(stream, "workers", id="0", mkstream=True)
        await publish_items(redis, stream, range(1))
        # One consumer read it, then others took it over and each crashed mid-handling.
        await redis.xreadgroup("workers", "crashed-0", {stream: ">"}, count=1)
        entry_id = (await redis.xrange(stream))[0][0]
        for n in range(1, settings.max_deliveries):
            await redis.xclaim(stream, "workers", f"crashed-{n}", 0, [entry_id])
        async with running(built):
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
        assert attempts == {}
        assert "without completing" in letters[0]["error"]


class TestConsumerGroups:
    async def test_pending_entries_of_dead_consumer_are_processed(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """Entries a killed consumer read but never acknowledged are taken over."""
        stream = settings.key("items")
        built, done, _ = counting_service(settings, stream, fail_on=set())
        await redis.xgroup_create(stream, "workers", id="0", mkstream=True)
        await publish_items(redis, stream, range(20))
        taken = await redis.xreadgroup("workers", "killed-consumer", {stream: ">"}, count=12)
        assert len(taken[0][1]) == 12
        async with running(built):
            await wait_for(lambda: len(done) == 20, within=15)
        assert sorted(done) == list(range(20))
        assert (await redis.xpending(stream, "workers"))["pending"] == 0

    async def test_slow_handler_keeps_its_entry(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A live handler slower than the claim idle time is not claimed from under it."""
        stream = settings.key("items")
        service = Service(settings, "classifier", "workers")
        calls: list[int] = []

        async def slow(item: Item) -> None:
            calls.append(item.n)
            await asyncio.sleep(settings.claim_idle_ms / 1000 * 4)

        service.consume(stream, slow, description="slow")
        await publish_items(redis, stream, range(1))
        async with running((service.app(), service)):
            await wait_for(lambda: _pending_is(redis, stream, 0), within=10)
        assert calls == [0]

    async def test_group_created_late_processes_earlier_entries(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A group that did not exist when entries were published still gets them all."""
        stream = settings.key("items")
        await publish_items(redis, stream, range(5))
        built, done, _ = counting_service(settings, stream, fail_on=set())
        async with running(built):
            await wait_for(lambda: len(done) == 5)
        assert sorted(done) == list(range(5))

    async def test_reads_are_bounded(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis
    ) -> None:
        """One read never takes more than read_count entries into a consumer's PEL."""
        settings = make_settings(read_count=4)
        stream = settings.key("items")
        service = Service(settings, "classifier", "workers")
        release = asyncio.Event()
        seen: list[int] = []

        async def slow(item: Item) -> None:
            seen.append(item.n)
            await release.wait()

        service.consume(stream, slow, description="slow")
        await publish_items(redis, stream, range(50))
        async with running((service.app(), service)):
            await wait_for(lambda: seen)
            pending = (await redis.xpending(stream, "workers"))["pending"]
            release.set()
        assert pending == 4


class TestInvalidPayloads:
    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"__data__": "this is not json {"}, "payload"),
            ({"__data__": json.dumps([1, 2, 3])}, "payload"),
            ({"title": "no text here"}, "text: Field required"),
            ({"text": "   "}, "text: String should have at least 1 character"),
            ({"text": "ok", "published_at": "yesterday"}, "published_at"),
            ({"text": "ok", "url": "ftp://example.org/x"}, "url: Value error, url must start"),
            ({"text": "ok", "schema_version": "9"}, "schema_version 9 is not supported"),
        ],
    )
    async def test_invalid_report_is_dead_lettered_with_reason(
        self, settings: Settings, redis: aioredis.Redis, fields: dict[str, str], reason: str
    ) -> None:
        """Invalid inbox entries are dead-lettered with a reason; valid ones still flow."""
        async with running(build_ingest(settings)):
            await redis.xadd(settings.inbox_stream, fields)
            await redis.xadd(settings.inbox_stream, {"text": "A valid report."})
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
            reports = await wait_for(lambda: stream_entries(redis, settings.reports_stream))
        assert reason in letters[0]["error"]
        assert letters[0]["deliveries"] == 1
        assert letters[0]["payload"] == fields
        assert reports[0]["text"] == "A valid report."

    async def test_report_with_wrong_types_reaching_classifier(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A malformed report on the reports stream is dead-lettered by the classifier."""
        good = Report(
            id="r-good",
            source="t",
            text="Peace talks resumed.",
            published_at=utc_now(),
            fetched_at=utc_now(),
        )
        async with running(build_classifier(settings)):
            await redis.xadd(
                settings.reports_stream, {"__data__": json.dumps({"id": 5, "text": ["x"]})}
            )
            await redis.xadd(settings.reports_stream, {"__data__": good.model_dump_json()})
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
            signals = await wait_for(lambda: stream_entries(redis, settings.signals_stream))
        assert letters[0]["origin_stream"] == settings.reports_stream
        assert "id: Input should be a valid string" in letters[0]["error"]
        assert signals[0]["report"]["id"] == "r-good"


async def _pending_is(redis: aioredis.Redis, stream: str, n: int) -> bool:
    return (
        bool(await redis.xlen(stream)) and (await redis.xpending(stream, "workers"))["pending"] == n
    )


class TestUnreadableEntries:
    async def test_entry_that_is_not_utf8_is_dead_lettered(
        self, settings: Settings, redis_url: str, redis: aioredis.Redis
    ) -> None:
        """An entry FastStream cannot parse is dead-lettered once, not retried forever."""
        raw_client = aioredis.Redis.from_url(redis_url)  # bytes in, bytes out
        async with running(build_ingest(settings)):
            await raw_client.xadd(settings.inbox_stream, {b"text": b"\xff\xfe broken \xc3("})
            await redis.xadd(settings.inbox_stream, {"text": "A valid report."})
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
            await wait_for(lambda: stream_entries(redis, settings.reports_stream))
            await asyncio.sleep(settings.claim_idle_ms / 1000 * 3)
        await raw_client.aclose()
        assert len(letters) == 1
        assert letters[0]["error"].startswith("unreadable entry")
        assert "broken" in letters[0]["payload"]["text"]
        assert len(await stream_entries(redis, settings.dead_letter_stream)) == 1
        assert (await redis.xpending(settings.inbox_stream, settings.ingest_group))["pending"] == 0


class TestReplay:
    async def test_dead_lettered_report_can_be_replayed(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A report whose publication kept failing is not a duplicate when replayed later."""
        await redis.set(settings.reports_stream, "not a stream")  # every XADD now fails
        async with running(build_ingest(settings)):
            await redis.xadd(settings.inbox_stream, {"text": "Shelling near the border."})
            letters = await wait_for(
                lambda: stream_entries(redis, settings.dead_letter_stream), within=15
            )
            assert "WRONGTYPE" in letters[0]["error"]
            await redis.delete(settings.reports_stream)
            await redis.xadd(settings.inbox_stream, letters[0]["payload"])
            reports = await wait_for(lambda: stream_entries(redis, settings.reports_stream))
        assert reports[0]["text"] == "Shelling near the border."


class TestBatches:
    async def test_batch_whose_output_fails_is_retried_entry_by_entry(
        self, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """When publishing a batch's output fails, every entry is retried and dead-lettered."""
        await redis.set(settings.signals_stream, "not a stream")  # every XADD now fails
        reports = [
            Report(
                id=f"r-{n}",
                source="t",
                text="Shelling near the border.",
                published_at=utc_now(),
                fetched_at=utc_now(),
            )
            for n in range(3)
        ]
        for report in reports:
            await redis.xadd(settings.reports_stream, {"__data__": report.model_dump_json()})
        async with running(build_classifier(settings)):
            letters = await wait_for(
                lambda: _when_at_least(stream_entries(redis, settings.dead_letter_stream), 3),
                within=20,
            )
        assert sorted(letter["report_id"] for letter in letters) == ["r-0", "r-1", "r-2"]
        assert all(letter["deliveries"] == settings.max_deliveries for letter in letters)
        assert all("WRONGTYPE" in letter["error"] for letter in letters)


async def _when_at_least(entries: object, n: int) -> list[dict[str, object]] | None:
    found: list[dict[str, object]] = await entries  # type: ignore[misc]
    return found if len(found) >= n else None
