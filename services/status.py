"""``flashpoint status``: every stream and group at a glance, and whether anything needs care."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.settings import ServiceName, Settings, input_of
from shared.streams import as_text, redis_client

SERVICES: tuple[ServiceName, ...] = ("ingest", "classifier", "notifier")
LAG_SCAN = 100_000


@dataclass
class GroupStatus:
    """One stream as one service's consumer group sees it."""

    service: str
    stream: str
    group: str
    length: int = 0
    lag: int | None = None
    pending: int = 0
    oldest_pending_idle_s: float | None = None
    consumers: list[tuple[str, int, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Status:
    """The whole pipeline."""

    groups: list[GroupStatus]
    dead_letters: int
    problems: list[str]


async def read_status(client: aioredis.Redis, settings: Settings, max_lag: int) -> Status:
    """Read every group's numbers and judge them against the claim time and ``max_lag``."""
    groups = [await _group(client, settings, service, max_lag) for service in SERVICES]
    dead = int(await client.xlen(settings.dead_letter_stream))
    problems = [f"{g.service}: {p}" for g in groups for p in g.problems]
    if dead:
        problems.append(f"{dead} dead letters to inspect (flashpoint dlq list)")
    return Status(groups=groups, dead_letters=dead, problems=problems)


async def _group(
    client: aioredis.Redis, settings: Settings, service: ServiceName, max_lag: int
) -> GroupStatus:
    stream, group = input_of(settings, service)
    status = GroupStatus(service=service, stream=stream, group=group)
    try:
        status.length = int(await client.xlen(stream))
        info = next(
            (g for g in await client.xinfo_groups(stream) if as_text(g["name"]) == group), None
        )
    except ResponseError:
        info = None
    if info is None:
        status.problems.append(f"consumer group {group} on {stream} does not exist")
        return status
    status.pending = int(info["pending"])
    status.lag = await _lag(client, stream, info)
    if status.lag is not None and status.lag > max_lag:
        status.problems.append(f"lag {status.lag} over {max_lag}")
    if status.pending:
        oldest = await client.xpending_range(stream, group, min="-", max="+", count=1)
        if oldest:
            status.oldest_pending_idle_s = int(oldest[0]["time_since_delivered"]) / 1000
            if status.oldest_pending_idle_s * 1000 > 2 * settings.claim_idle_ms:
                status.problems.append(
                    f"an entry pending {status.oldest_pending_idle_s:.0f}s, "
                    "over twice the claim time: is the claimer running?"
                )
    for consumer in await client.xinfo_consumers(stream, group):
        status.consumers.append(
            (as_text(consumer["name"]), int(consumer["pending"]), int(consumer["idle"]) / 1000)
        )
    return status


async def _lag(client: aioredis.Redis, stream: str, info: dict[Any, Any]) -> int | None:
    if info.get("lag") is not None:
        return int(info["lag"])
    last = as_text(info["last-delivered-id"])
    newer = await client.xrange(stream, min=f"({last}", max="+", count=LAG_SCAN)
    return len(newer or [])


def render(status: Status) -> str:
    """The status as a table a person reads at a glance."""
    lines = [f"{'service':<11}{'stream':<28}{'length':>8}{'lag':>8}{'pending':>9}{'oldest':>9}"]
    for g in status.groups:
        oldest = f"{g.oldest_pending_idle_s:.0f}s" if g.oldest_pending_idle_s is not None else "-"
        lag = "-" if g.lag is None else str(g.lag)
        lines.append(f"{g.service:<11}{g.stream:<28}{g.length:>8}{lag:>8}{g.pending:>9}{oldest:>9}")
        for name, pending, idle in g.consumers:
            lines.append(f"{'':<11}  consumer {name}: {pending} pending, idle {idle:.1f}s")
    lines.append(f"dead letters: {status.dead_letters}")
    lines.extend(f"ATTENTION: {problem}" for problem in status.problems)
    if not status.problems:
        lines.append("all well")
    return "\n".join(lines)


def run(max_lag: int) -> int:
    """Print the status; exit 1 when something needs attention, 2 when Redis is unreachable."""

    async def main() -> int:
        settings = Settings()
        client = redis_client(settings)
        try:
            status = await read_status(client, settings, max_lag)
        except (aioredis.RedisError, OSError) as error:
            print(f"Redis is unreachable: {error}")
            return 2
        finally:
            await client.aclose()
        print(render(status))
        return 1 if status.problems else 0

    return asyncio.run(main())
