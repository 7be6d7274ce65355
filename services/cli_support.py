"""What the command-line tools share: settings and a Redis client for one asyncio run."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from shared.settings import Settings
from shared.streams import redis_client

RedisCommand = Callable[[argparse.Namespace, aioredis.Redis, Settings], Awaitable[int]]


def with_redis(command: RedisCommand) -> Callable[[argparse.Namespace], int]:
    """An argparse handler that runs ``command`` with the configured Redis, then closes it."""

    def run(args: argparse.Namespace) -> int:
        async def main() -> int:
            settings = Settings()
            client = redis_client(settings)
            try:
                return await command(args, client, settings)
            finally:
                await client.aclose()

        return asyncio.run(main())

    return run
