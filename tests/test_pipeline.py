"""The whole pipeline on a real Redis: a report written by any program becomes an alert."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import redis.asyncio as aioredis

from services.classifier.app import build as build_classifier
from services.ingest.app import build as build_ingest
from services.notifier.app import build as build_notifier
from shared.settings import Settings
from tests.conftest import HttpSink, running, stream_entries, wait_for

ESCALATION = (
    "Thai and Cambodian troops exchanged artillery fire near Preah Vihear on Tuesday; "
    "two soldiers were wounded and villagers in Si Sa Ket fled to shelters."
)


@asynccontextmanager
async def pipeline(settings: Settings) -> AsyncIterator[None]:
    """All three services running in this event loop."""
    async with AsyncExitStack() as stack:
        for build in (build_ingest, build_classifier, build_notifier):
            await stack.enter_async_context(running(build(settings)))
        yield


class TestOutsidePublisher:
    async def test_flat_fields_xadd_becomes_alert(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """A report XADDed as flat field/value pairs by a plain client reaches a channel."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/alerts"])
        async with pipeline(settings):
            await redis.xadd(
                settings.inbox_stream,
                {
                    "source": "plain-client",
                    "title": "Border clash",
                    "text": ESCALATION,
                    "url": "https://example.org/clash?utm_source=x",
                },
            )
            await wait_for(lambda: http_sink.requests)
        alert = http_sink.json_bodies()[0]
        assert alert["title"].startswith("🔴 ESCALATION")
        assert "Preah Vihear (KH)" in alert["message"]
        assert "https://example.org/clash" in alert["message"]
        assert "utm_source" not in alert["message"]
        assert http_sink.requests[0]["path"] == "/alerts"

    async def test_json_data_field_xadd_becomes_alert(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """A report XADDed as one __data__ field holding JSON reaches a channel."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        report = {"text": "Thailand and Cambodia signed a ceasefire agreement in Kuala Lumpur."}
        async with pipeline(settings):
            await redis.xadd(settings.inbox_stream, {"__data__": json.dumps(report)})
            await wait_for(lambda: http_sink.requests)
        assert http_sink.json_bodies()[0]["title"].startswith("🕊️ CEASEFIRE")

    async def test_unrelated_news_is_classified_but_not_sent(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """A report with no signal is recorded as 'none' and no channel hears of it."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        async with pipeline(settings):
            await redis.xadd(settings.inbox_stream, {"text": "Rice exports rose 4% in October."})
            await redis.xadd(settings.inbox_stream, {"text": ESCALATION})
            await wait_for(lambda: http_sink.requests)
            signals = await wait_for(
                lambda: _when_len(stream_entries(redis, settings.signals_stream), 2)
            )
        assert sorted(s["label"] for s in signals) == ["escalation", "none"]
        assert len(http_sink.requests) == 1

    async def test_duplicates_alert_once(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """The same URL or the same text published again produces no second alert."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        async with pipeline(settings):
            await redis.xadd(
                settings.inbox_stream, {"text": ESCALATION, "url": "https://example.org/a"}
            )
            await redis.xadd(
                settings.inbox_stream,
                {"text": "Another wording.", "url": "https://EXAMPLE.org/a#top"},
            )
            await redis.xadd(
                settings.inbox_stream,
                {"text": "  " + ESCALATION.upper(), "url": "https://example.org/b"},
            )
            await wait_for(lambda: http_sink.requests)
            await wait_for(lambda: _pending_is_zero(redis, settings))
        assert len(http_sink.requests) == 1
        assert len(await stream_entries(redis, settings.reports_stream)) == 1

    async def test_delivery_is_recorded(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """Every send is recorded on the deliveries stream with the masked channel."""
        settings = make_settings(notify_urls=[f"json://user:hunter22@127.0.0.1:{http_sink.port}/"])
        async with pipeline(settings):
            await redis.xadd(settings.inbox_stream, {"text": ESCALATION})
            records = await wait_for(lambda: stream_entries(redis, settings.deliveries_stream))
        assert records[0]["outcome"] == "sent"
        assert "hunter22" not in records[0]["channel"]
        assert records[0]["channel"].startswith("json://user:")


async def _when_len(entries_coro: object, n: int) -> list[dict[str, object]] | None:
    entries = await entries_coro  # type: ignore[misc]
    return entries if len(entries) >= n else None


async def _pending_is_zero(redis: aioredis.Redis, settings: Settings) -> bool:
    for stream, group in (
        (settings.inbox_stream, settings.ingest_group),
        (settings.reports_stream, settings.classifier_group),
        (settings.signals_stream, settings.notifier_group),
    ):
        summary = await redis.xpending(stream, group)
        if summary["pending"]:
            return False
    return True
