"""What can be checked here of Redis Cluster: with one hash tag in the key prefix and the stream
names, the pipeline works and every key it writes carries the tag (so one slot holds them all,
as the multi-key Lua scripts need)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis.asyncio as aioredis

from services.classifier.app import build as build_classifier
from services.ingest.app import build as build_ingest
from services.notifier.app import build as build_notifier
from shared.settings import Settings
from tests.conftest import HttpSink, running, wait_for


async def test_every_key_carries_the_hash_tag(
    make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
) -> None:
    tag = "{fp" + uuid.uuid4().hex[:8] + "}"
    settings = make_settings(
        key_prefix=tag,
        inbox_stream=f"{tag}:inbox",
        reports_stream=f"{tag}:reports",
        signals_stream=f"{tag}:signals",
        deliveries_stream=f"{tag}:deliveries",
        dead_letter_stream=f"{tag}:dead-letters",
        notify_urls=[f"json://127.0.0.1:{http_sink.port}/"],
    )
    async with (
        running(build_ingest(settings)),
        running(build_classifier(settings)),
        running(build_notifier(settings)),
    ):
        for n in range(3):
            text = f"Artillery shelling hit villages near Surin, killing {n + 2} civilians."
            await redis.xadd(settings.inbox_stream, {"text": text, "url": f"https://x.example/{n}"})
        await wait_for(lambda: len(http_sink.requests) == 3, within=20)
    written = [key async for key in redis.scan_iter(match=f"*{tag[1:-1]}*")]
    assert len(written) > 5  # streams, dedup keys, story index, delivery marks
    assert [key for key in written if not key.startswith(tag)] == []
