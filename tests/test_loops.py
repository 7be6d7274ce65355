"""Background loops stop when asked, and a claim heartbeat never outlives its handler."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import redis.asyncio as aioredis

from shared.loops import Loop
from shared.settings import Settings
from shared.streams import DeliveryGuard


async def test_stop_lets_the_round_under_way_finish() -> None:
    finished: list[int] = []

    async def slow_round() -> float:
        await asyncio.sleep(0.2)
        finished.append(1)
        return 0.01

    loop = Loop("slow", slow_round).start()
    await asyncio.sleep(0.05)
    await loop.stop(grace_s=2)
    assert finished == [1]


async def test_a_failing_round_does_not_end_the_loop() -> None:
    rounds: list[int] = []

    async def flaky() -> float:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("first round fails")
        return 0.01

    loop = Loop("flaky", flaky).start()
    await asyncio.sleep(1.3)  # a failed round waits at least a second
    await loop.stop()
    assert len(rounds) >= 2


async def test_a_round_stuck_past_the_grace_is_cancelled() -> None:
    async def stuck() -> float:
        await asyncio.Event().wait()
        return 1.0

    loop = Loop("stuck", stuck).start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(loop.stop(grace_s=0.1), timeout=2)
    assert loop._task is not None
    assert loop._task.cancelled()


async def test_claim_heartbeat_stops_with_its_handler(
    make_settings: Callable[..., Settings], redis: aioredis.Redis
) -> None:
    """Handlers that end at any moment, even while a renewal is on the wire, leave no
    heartbeat behind: the entry goes idle, so a claimer can retry it.

    Cancelling a task while redis-py waits for a reply can be lost, and a heartbeat stopped
    that way kept renewing its entry for ever (seen under CPU load in CI)."""
    settings = make_settings(claim_idle_ms=15)  # a renewal every 5 ms
    stream = settings.inbox_stream
    await redis.xgroup_create(stream, "g", id="0", mkstream=True)
    entry = await redis.xadd(stream, {"n": "1"})
    await redis.xreadgroup("g", "c", {stream: ">"})
    client = aioredis.Redis.from_url(settings.redis_url)
    guard = DeliveryGuard(settings, client, "g", "c")
    raw = {"channel": stream, "message_ids": [entry]}
    rng = random.Random(7)
    try:
        for _ in range(40):
            async with guard.kept_claimed(raw):
                await asyncio.sleep(rng.uniform(0.004, 0.012))
            await asyncio.sleep(0.1)
            [pending] = await redis.xpending_range(stream, "g", min="-", max="+", count=1)
            assert int(pending["time_since_delivered"]) >= 90
    finally:
        await client.aclose()
