"""Stream plumbing every service uses: at-least-once delivery over Redis Streams.

How an entry travels through a service (each point answers a measured FastStream-on-Redis
behaviour: nothing redelivers a pending entry unless something claims it, unbounded reads pull
a whole backlog into one consumer, and a group created at ``$`` skips earlier entries):

- Groups are created at id 0 before anything reads, so a late group never skips entries.
- The main subscriber reads at most ``read_count`` new entries at a time (``XREADGROUP >``).
- A handler publishes its output itself and returns; only then is the entry acknowledged.
- A handler that raises leaves its entry pending. A second subscriber on the same group, the
  claimer, takes over entries idle longer than ``claim_idle_ms`` (``XAUTOCLAIM``), which also
  recovers entries of consumers that died.
- :class:`DeliveryGuard` dead-letters an entry at once when it can never succeed (invalid
  payload, :class:`PermanentError`), and after ``max_deliveries`` when it keeps failing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from faststream._internal.basic_types import AsyncFuncAny
from faststream._internal.context.repository import ContextRepo
from faststream.message import StreamMessage
from faststream.middlewares import BaseMiddleware
from faststream.redis.message import RedisStreamMessage
from faststream.redis.publisher.usecase import StreamPublisher
from pydantic import ValidationError
from redis.exceptions import ResponseError

from shared.logs import bound_report, get_logger
from shared.loops import Loop
from shared.messages import DeadLetter
from shared.observe import ENTRIES, HANDLER_SECONDS
from shared.packing import connection_pool
from shared.settings import Settings

log = get_logger(__name__)


class PermanentError(Exception):
    """Processing this entry can never succeed: dead-letter it without retrying."""


class DeliveriesExhausted(PermanentError):
    """The entry was delivered ``max_deliveries`` times without being acknowledged."""

    def __init__(self, deliveries: int) -> None:
        super().__init__(
            f"delivered {deliveries} times without completing "
            "(its consumer died or hung while handling it)"
        )
        self.deliveries = deliveries


def redis_client(settings: Settings) -> aioredis.Redis:
    """An asyncio Redis client for the configured server, packing commands with hiredis."""
    pool = connection_pool(
        settings.redis_url, socket_connect_timeout=5, socket_timeout=15, health_check_interval=30
    )
    return aioredis.Redis.from_pool(pool)


async def ensure_group(client: aioredis.Redis, stream: str, group: str) -> bool:
    """Create ``group`` on ``stream`` at id 0 (and the stream if missing); True if created."""
    try:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise
        return False
    return True


def entry_fields(raw: Mapping[str, Any]) -> dict[str, str]:
    """The fields of a raw stream entry, decoded for a person to read."""
    data = raw.get("data")
    if not isinstance(data, dict):
        return {}
    return {as_text(key): as_text(value) for key, value in data.items()}


def report_id_of(body: object) -> str | None:
    """The report id a decoded message body names, if any."""
    if isinstance(body, dict):
        report = body.get("report")
        if isinstance(report, dict):
            body = report
        value = body.get("id") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None
    return None


def describe_error(error: BaseException, handler_names: frozenset[str] = frozenset()) -> str:
    """A reason a person can act on, one clause per problem.

    Validation errors raised while FastStream validates a handler's arguments name the handler
    parameter first; ``handler_names`` lets that be dropped so the field path starts at the
    payload.
    """
    if not isinstance(error, ValidationError):
        return str(error) or type(error).__name__
    from_handler = error.title in handler_names
    problems = []
    for problem in error.errors(include_url=False):
        loc = problem["loc"][1:] if from_handler else problem["loc"]
        if not loc and problem["type"] in {"model_type", "dict_type", "model_attributes_type"}:
            snippet = repr(problem["input"])[:80]
            problems.append(f"payload is not a JSON object (got {snippet})")
            continue
        where = ".".join(str(part) for part in loc) or "payload"
        problems.append(f"{where}: {problem['msg']}")
    return "invalid message: " + "; ".join(problems)


class DeliveryGuard:
    """Broker middleware that settles the fate of every stream entry.

    Invalid payloads and :class:`PermanentError` go to the dead-letter stream at once; other
    errors leave the entry pending for the claimer until it has been delivered
    ``max_deliveries`` times, then it is dead-lettered with the last error. Entries that reach
    the claimer already past the limit (their consumer kept dying) are dead-lettered unrun.
    While a handler runs, its entry is kept claimed, and a handler that runs longer than
    ``handler_timeout_s`` fails like any other.
    """

    def __init__(
        self, settings: Settings, client: aioredis.Redis, group: str, consumer: str
    ) -> None:
        self.settings = settings
        self.client = client
        self.group = group
        self.consumer = consumer
        self.claimers: set[object] = set()
        self.handler_names: frozenset[str] = frozenset()
        self.dead_letters: DeadLetters | None = None
        """Set by whoever builds the broker; the guard publishes dead letters through it."""

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> BaseMiddleware:
        """FastStream builds one middleware per message through this."""
        return _GuardScope(msg, context=context, guard=self)

    async def handle(
        self, call_next: AsyncFuncAny, msg: RedisStreamMessage, context: ContextRepo
    ) -> Any:
        """Run the handler for one entry and settle its fate."""
        raw = msg.raw_message
        stream = as_text(raw["channel"])
        started = time.perf_counter()
        with bound_report(report_id_of(await _decoded(msg))):
            try:
                if context.get_local("handler_") in self.claimers:
                    deliveries = await self.deliveries(raw)
                    if deliveries > self.settings.max_deliveries:
                        raise DeliveriesExhausted(deliveries)
                async with (
                    self.kept_claimed(raw),
                    asyncio.timeout(self.settings.handler_timeout_s),
                ):
                    result = await call_next(msg)
                self.count(stream, "processed", 1, time.perf_counter() - started)
                return result
            except (ValidationError, PermanentError) as error:
                await self.dead_letter(raw, error, await self.deliveries(raw), msg)
            except Exception as error:
                deliveries = await self.deliveries(raw)
                if deliveries < self.settings.max_deliveries:
                    self.count(stream, "failed", 1, time.perf_counter() - started)
                    log.warning(
                        "handler failed; the entry stays pending for a retry",
                        stream=raw["channel"],
                        entry_id=entry_id(raw),
                        deliveries=deliveries,
                        error=describe_error(error, self.handler_names) or repr(error),
                    )
                    raise
                await self.dead_letter(raw, error, deliveries, msg)
            return None

    def count(self, stream: str, outcome: str, entries: int, seconds: float | None = None) -> None:
        """Add handled entries to the service's metrics."""
        ENTRIES.labels(self.group, stream, outcome).inc(entries)
        if seconds is not None:
            HANDLER_SECONDS.labels(self.group, stream).observe(seconds)

    async def unparseable(self, raw: Mapping[str, Any], error: BaseException) -> None:
        """Dead-letter an entry FastStream could not even parse (it never reached a handler).

        FastStream cannot acknowledge a message it could not parse, so this does it.
        """
        deliveries = await self.deliveries(raw)
        await self.dead_letter(raw, PermanentError(f"unreadable entry: {error}"), deliveries)
        await self.client.xack(raw["channel"], self.group, entry_id(raw))

    async def deliveries(self, raw: Mapping[str, Any]) -> int:
        """How many times the entry has been delivered to this group (1 when unknown)."""
        pending = await self.client.xpending_range(
            raw["channel"], self.group, min=entry_id(raw), max=entry_id(raw), count=1
        )
        return int(pending[0]["times_delivered"]) if pending else 1

    @asynccontextmanager
    async def kept_claimed(self, raw: Mapping[str, Any]) -> AsyncIterator[None]:
        """While the block runs, keep resetting the entries' idle time so no claimer takes
        them from this live consumer (XCLAIM ... JUSTID does not count as a delivery)."""
        interval_ms = self.settings.claim_idle_ms // 3

        async def touch() -> float:
            try:
                await self.client.xclaim(
                    raw["channel"],
                    self.group,
                    self.consumer,
                    min_idle_time=interval_ms // 2,
                    message_ids=list(raw["message_ids"]),
                    justid=True,
                )
            except aioredis.RedisError as error:
                log.warning("could not renew the claim on an entry", error=str(error))
            return interval_ms / 1000

        heartbeat = Loop("claim heartbeat", touch, first_delay_s=interval_ms / 1000).start()
        try:
            yield
        finally:
            await heartbeat.stop()

    async def dead_letter(
        self,
        raw: Mapping[str, Any],
        error: BaseException,
        deliveries: int,
        msg: RedisStreamMessage | None = None,
    ) -> None:
        """Publish the entry and why it failed to the dead-letter stream."""
        assert self.dead_letters is not None, "Service wires the dead-letter publisher"
        self.count(as_text(raw["channel"]), "dead_lettered", 1)
        await self.dead_letters.record(
            origin_stream=as_text(raw["channel"]),
            entry_id=entry_id(raw),
            group=self.group,
            consumer=self.consumer,
            deliveries=deliveries,
            error=describe_error(error, self.handler_names),
            error_type=type(error).__name__,
            payload=entry_fields(raw),
            report_id=report_id_of(await _decoded(msg)) if msg is not None else None,
        )


class DeadLetters:
    """Writes :class:`DeadLetter` records for entries and inputs nothing could process."""

    def __init__(self, publisher: StreamPublisher) -> None:
        self.publisher = publisher

    async def record(
        self,
        *,
        origin_stream: str,
        entry_id: str,
        error: str,
        error_type: str,
        payload: dict[str, str],
        group: str = "",
        consumer: str = "",
        deliveries: int = 0,
        report_id: str | None = None,
    ) -> DeadLetter:
        """Publish one dead letter and log it."""
        letter = DeadLetter(
            origin_stream=origin_stream,
            entry_id=entry_id,
            group=group,
            consumer=consumer,
            deliveries=deliveries,
            error=error,
            error_type=error_type,
            payload=payload,
            report_id=report_id,
        )
        await self.publisher.publish(letter)
        log.error(
            "dead-lettered",
            origin=origin_stream,
            entry_id=entry_id,
            deliveries=deliveries,
            error=letter.error,
        )
        return letter


class _GuardScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, guard: DeliveryGuard) -> None:
        super().__init__(msg, context=context)
        self.guard = guard
        self.reached_handler = False

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        if not isinstance(msg, RedisStreamMessage):
            return await call_next(msg)
        self.reached_handler = True
        return await self.guard.handle(call_next, msg, self.context)

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        if exc_val is None or self.reached_handler or not isinstance(exc_val, Exception):
            return False
        if not isinstance(self.msg, dict) or self.msg.get("type") != "stream":
            return False  # a batch that cannot be parsed is retried entry by entry
        await self.guard.unparseable(self.msg, exc_val)
        return True  # handled: the entry is acknowledged instead of retried forever


def split_batch(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The raw entries of a batch message, each shaped like a single entry's."""
    return [
        {"channel": raw["channel"], "message_ids": [message_id], "data": data}
        for message_id, data in zip(raw["message_ids"], raw["data"], strict=True)
    ]


def entry_id(raw: Mapping[str, Any]) -> str:
    """The id of a raw stream entry (``msg.raw_message`` of a FastStream message)."""
    return as_text(raw["message_ids"][0])


async def _decoded(msg: StreamMessage[Any] | None) -> object:
    if msg is None:
        return None
    try:
        return await msg.decode()
    except Exception:  # an undecodable body is the handler's to reject, with its reason
        return None


def as_text(value: object) -> str:
    """A Redis reply as text, whether the client decodes responses or not."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
