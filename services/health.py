"""A service's health as a container healthcheck sees it."""

from __future__ import annotations

from redis.exceptions import RedisError, ResponseError

from shared.settings import ServiceName, Settings, input_of
from shared.streams import redis_client


async def check(settings: Settings, service: ServiceName) -> list[str]:
    """What is wrong, if anything: Redis unreachable or the consumer group missing."""
    client = redis_client(settings)
    stream, group = input_of(settings, service)
    try:
        await client.ping()
        groups = await client.xinfo_groups(stream)
    except ResponseError as error:
        return [f"{service}: stream {stream} is missing ({error})"]
    except (RedisError, OSError) as error:
        return [f"{service}: Redis is unreachable: {error}"]
    finally:
        await client.aclose()
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
    if group not in names:
        return [f"{service}: consumer group {group} does not exist on {stream}"]
    return []


async def group_lost(settings: Settings, service: ServiceName) -> str | None:
    """What is missing when Redis answers but the service's stream or group is gone, else None.

    Redis being unreachable is not a lost group: nothing can be said then.
    """
    problems = await check(settings, service)
    if not problems or "unreachable" in problems[0]:
        return None
    return problems[0]
