"""Subscriptions kept in Redis, shared by every notifier replica and the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import redis.asyncio as aioredis
import yaml
from pydantic import TypeAdapter, ValidationError

from services.notifier.subscriptions import Subscription
from shared.problems import problems
from shared.settings import Settings
from shared.streams import as_text

Change = Literal["added", "updated", "unchanged"]
_MANY = TypeAdapter(list[Subscription])


class SubscriptionFileError(ValueError):
    """A subscriptions file that cannot be loaded, naming the file and the entry."""


class SubscriptionStore:
    """One Redis hash of subscription name to its JSON."""

    def __init__(self, client: aioredis.Redis, settings: Settings, cache_s: float = 2.0) -> None:
        self.client = client
        self.key = settings.key("subscriptions")
        self.cache_s = cache_s
        self._cached: tuple[float, list[Subscription]] | None = None

    async def put(self, subscription: Subscription) -> Change:
        """Add or replace a subscription; say which."""
        data = subscription.model_dump_json()
        previous = await self.client.hget(self.key, subscription.name)
        if previous is not None and as_text(previous) == data:
            return "unchanged"
        await self.client.hset(self.key, subscription.name, data)
        self._cached = None
        return "added" if previous is None else "updated"

    async def get(self, name: str) -> Subscription | None:
        """The subscription called ``name``, if any."""
        data = await self.client.hget(self.key, name)
        return None if data is None else Subscription.model_validate_json(data)

    async def remove(self, name: str) -> bool:
        """Delete a subscription; True if it existed."""
        self._cached = None
        return bool(await self.client.hdel(self.key, name))

    async def all(self) -> list[Subscription]:
        """Every subscription, by name."""
        stored = await self.client.hgetall(self.key)
        return sorted(
            (Subscription.model_validate_json(data) for data in stored.values()),
            key=lambda s: s.name,
        )

    async def current(self) -> list[Subscription]:
        """Every subscription, re-read from Redis at most every ``cache_s`` seconds."""
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.cache_s:
            self._cached = (now, await self.all())
        return self._cached[1]

    async def load_file(self, path: Path) -> dict[str, Change]:
        """Add or update every subscription in a YAML file (loading twice changes nothing)."""
        return {s.name: await self.put(s) for s in read_subscriptions_file(path)}


def read_subscriptions_file(path: Path) -> list[Subscription]:
    """Validate a YAML list of subscriptions; errors name the file, the entry and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        msg = f"{path}: cannot read subscriptions: {error}"
        raise SubscriptionFileError(msg) from error
    try:
        return _MANY.validate_python(
            data.get("subscriptions", []) if isinstance(data, dict) else data
        )
    except ValidationError as error:
        msg = f"{path}: {'; '.join(problems(error, prefix='entry '))}"
        raise SubscriptionFileError(msg) from error
