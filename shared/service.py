"""One Flashpoint service: a FastStream app with guarded consumers and trimmed publishers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from faststream import AckPolicy, FastStream
from faststream.message import StreamMessage
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage
from faststream.redis.publisher.usecase import StreamPublisher
from faststream.specification import AsyncAPI
from pydantic import BaseModel, ValidationError
from redis.exceptions import ResponseError

from shared.logs import get_logger
from shared.messages import DeadLetter
from shared.observe import Observer, quiet_server
from shared.packing import connection_class
from shared.settings import ServiceName, Settings, input_of
from shared.streams import (
    DeadLetters,
    DeliveryGuard,
    PermanentError,
    ensure_group,
    redis_client,
    split_batch,
)
from shared.wire import PlainJsonFormat, read_entry

Handler = Callable[..., Awaitable[None]]
M = TypeVar("M", bound=BaseModel)

log = get_logger(__name__)

# Add each ARGV after the first as one entry's __data__ to KEYS[1], trimmed to about ARGV[1].
_PUBLISH = """
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '__data__', ARGV[i])
end
return #ARGV - 1
"""

_ENTRIES: ContextVar[list[dict[str, Any]]] = ContextVar("flashpoint_entries")
"""The raw entries of the items being processed (see :meth:`Service.entries`)."""


class Service:
    """Wiring shared by ingest, classifier and notifier.

    ``consume`` registers a handler for new and reclaimed entries of a stream; ``publisher``
    gives a stream publisher with an approximate MAXLEN. Consumer groups are created at id 0
    when the app starts, before any subscriber reads.
    """

    def __init__(self, settings: Settings, name: ServiceName, group: str | None = None) -> None:
        self.settings = settings
        self.name = name
        self.input_stream, default_group = input_of(settings, name)
        self.redis = redis_client(settings)
        self._publish = self.redis.register_script(_PUBLISH)
        self.guard = DeliveryGuard(
            settings, self.redis, group or default_group, settings.consumer_for(name)
        )
        broker_logger = logging.getLogger(f"flashpoint.{name}.broker")
        if broker_logger.getEffectiveLevel() > logging.DEBUG:
            broker_logger.setLevel(logging.WARNING)  # FastStream's chatter about its own tasks
        self.broker = RedisBroker(
            settings.redis_url,
            connection_class=connection_class(settings.redis_url),
            middlewares=[self.guard],
            message_format=PlainJsonFormat,
            logger=broker_logger,
            log_level=logging.DEBUG,  # FastStream's per-message lines, only when debugging
            graceful_timeout=settings.graceful_timeout_s,
        )
        self.inputs: list[str] = []
        self.dead_letters = DeadLetters(self.publisher(settings.dead_letter_stream, DeadLetter))
        self.guard.dead_letters = self.dead_letters

    def publisher(self, stream: str, schema: type[BaseModel]) -> StreamPublisher:
        """A publisher to ``stream``, documented with ``schema`` in the AsyncAPI document."""
        return self.broker.publisher(
            stream=StreamSub(stream, maxlen=self.settings.stream_maxlen),
            schema=schema,
            title=f"{stream}:publish",
        )

    def consume(
        self, stream: str, handler: Handler, *, description: str, read_count: int | None = None
    ) -> None:
        """Run ``handler`` for every entry of ``stream``, at least once.

        ``read_count`` (default ``FLASHPOINT_READ_COUNT``) bounds how many entries one read
        takes. Entries read but not yet handled are not kept claimed, so a slow handler wants
        a small one: the rest of the read must be handled within the claim idle time.
        """
        self._register(
            stream,
            handler,
            handler,
            batch=False,
            read_count=read_count or self.settings.read_count,
            description=description,
        )

    def consume_batches(
        self,
        stream: str,
        model: type[M],
        process: Callable[[list[M]], Awaitable[None]],
        *,
        description: str,
        read_count: int | None = None,
    ) -> None:
        """Run ``process`` on entries of ``stream`` taken ``read_count`` at a time (default
        ``FLASHPOINT_READ_COUNT``); the batch is kept claimed while it runs.

        Each entry is validated from its bytes once. Invalid entries of a batch (and entries
        that are not UTF-8) are dead-lettered one by one and the rest processed together;
        :meth:`entries` tells ``process`` which entries its items came from. If ``process``
        fails, the batch stays pending and the claimer retries its entries one at a time,
        with the usual delivery limit and dead letters.
        """
        settings, guard = self.settings, self.guard

        async def one(item: Any) -> None:
            message: Any = self.broker.context.get_local("message")
            entries = _ENTRIES.set([message.raw_message])
            try:
                await process([item])
            finally:
                _ENTRIES.reset(entries)

        async def many(_: list[Any]) -> None:
            # The body is empty (see _undecoded_batch): each entry is validated from its bytes.
            # The message is taken from the context rather than injected, which FastStream
            # would do in a worker thread for every batch.
            message: RedisBatchStreamMessage = self.broker.context.get_local("message")
            raw = message.raw_message
            valid: list[M] = []
            valid_entries: list[dict[str, Any]] = []
            started = time.perf_counter()
            async with guard.kept_claimed(raw), asyncio.timeout(settings.handler_timeout_s):
                for entry in split_batch(raw):
                    try:
                        valid.append(read_entry(model, entry["data"]))
                    except ValidationError as error:
                        await guard.dead_letter(entry, error, 1)
                        continue
                    except UnicodeDecodeError as error:
                        unreadable = PermanentError(f"unreadable entry: {error}")
                        await guard.dead_letter(entry, unreadable, 1)
                        continue
                    valid_entries.append(entry)
                if valid:
                    entries = _ENTRIES.set(valid_entries)
                    try:
                        await process(valid)
                    finally:
                        _ENTRIES.reset(entries)
            guard.count(stream, "processed", len(valid), time.perf_counter() - started)

        one.__name__ = f"on_{model.__name__.lower()}"
        one.__annotations__ = {"item": model, "return": None}
        self._register(
            stream,
            many,
            one,
            batch=True,
            read_count=read_count or settings.read_count,
            description=description,
        )

    @staticmethod
    def entries() -> list[dict[str, Any]]:
        """The raw entries of the items the running ``consume_batches`` process call got, in
        order, each shaped like a single entry (``channel``, ``message_ids``, ``data``): the
        valid entries of a batch, or the one entry the claimer retries."""
        try:
            return _ENTRIES.get()
        except LookupError:
            msg = "no stream entries are being processed"
            raise RuntimeError(msg) from None

    def _register(
        self,
        stream: str,
        read: Handler,
        reclaim: Handler,
        *,
        batch: bool,
        read_count: int,
        description: str,
    ) -> None:
        """Subscribe ``read`` to new entries and ``reclaim`` to entries the claimer takes over.

        The subscriber that sees single entries documents the stream in the AsyncAPI
        document, since its handler's parameter is the payload's model.
        """
        settings, guard = self.settings, self.guard
        main = self.broker.subscriber(
            stream=StreamSub(
                stream,
                group=guard.group,
                consumer=guard.consumer,
                batch=batch,
                max_records=read_count,
                polling_interval=settings.poll_interval_ms,
            ),
            parser=_undecoded_batch if batch else None,
            ack_policy=AckPolicy.REJECT_ON_ERROR,
            title=f"{stream}:consume",
            description=description,
            include_in_schema=not batch,
        )
        claimer = self.broker.subscriber(
            stream=StreamSub(
                stream,
                group=guard.group,
                consumer=guard.consumer,
                min_idle_time=settings.claim_idle_ms,
                polling_interval=max(settings.poll_interval_ms, 500),
            ),
            ack_policy=AckPolicy.REJECT_ON_ERROR,
            title=f"{stream}:consume",
            description=description,
            include_in_schema=batch,
        )
        main(read)
        claimer(reclaim)
        guard.claimers.add(claimer)
        guard.handler_names |= {reclaim.__name__}
        self.inputs.append(stream)

    async def publish_many(self, stream: str, messages: Sequence[BaseModel]) -> None:
        """Publish ``messages`` to ``stream`` in one round trip (same JSON entries).

        One script call adds them all: a pipeline of one XADD per message costs the client
        about three times as much CPU. A failure raises Redis's own error (say, WRONGTYPE),
        and the messages before it stay published, as with a pipeline.
        """
        if not messages:
            return
        try:
            await self._publish(
                keys=[stream],
                args=[self.settings.stream_maxlen, *(m.model_dump_json() for m in messages)],
            )
        except ResponseError as error:
            raise ResponseError(_command_error(error)) from error

    async def ensure_groups(self) -> None:
        """Create this service's consumer groups at id 0 where they do not exist yet, and make
        entries a previous run of this consumer left pending due for the claimer at once."""
        for stream in self.inputs:
            if await ensure_group(self.redis, stream, self.guard.group):
                log.info("consumer group created", stream=stream, group=self.guard.group)
            await self._reclaim_own(stream)

    async def _reclaim_own(self, stream: str) -> None:
        """Nothing of this consumer's runs yet, so whatever it has pending is a leftover."""
        group, consumer = self.guard.group, self.guard.consumer
        while leftovers := await self.redis.xpending_range(
            stream, group, min="-", max="+", count=1000, consumername=consumer
        ):
            ids: list[int | bytes | str | memoryview[int]] = [e["message_id"] for e in leftovers]
            await self.redis.xclaim(
                stream, group, consumer, 0, ids, idle=self.settings.claim_idle_ms, justid=True
            )
            log.info(
                "entries left pending by a previous run will be retried now",
                stream=stream,
                count=len(ids),
            )
            if len(ids) < 1000:
                break

    async def close(self) -> None:
        """Release the service's own Redis connection."""
        await self.redis.aclose()

    def app(self) -> FastStream:
        """The FastStream application that runs this service (with its health endpoints)."""
        app = FastStream(
            self.broker,
            logger=logging.getLogger(f"flashpoint.{self.name}.app"),
            on_startup=[self.ensure_groups],
            after_shutdown=[self.close],
            specification=AsyncAPI(
                title=f"Flashpoint {self.name}",
                version="1.0.0",
                description=f"Stream contract of the Flashpoint {self.name} service.",
            ),
        )
        if self.settings.health_port is not None:
            self._observe(app, self.settings.health_port)
        return app

    def _observe(self, app: FastStream, port: int) -> None:
        observer = Observer(
            self.name,
            self.redis,
            lambda: [(stream, self.guard.group) for stream in self.inputs],
            lambda: all(sub.running for sub in self.broker.subscribers),
            self.settings.ready_max_lag,
        )
        server = quiet_server(observer.app(), self.settings.health_host, port)
        sampling = observer.sampling(self.settings.sample_every_s)
        serving: list[asyncio.Task[None]] = []

        @app.after_startup
        async def start_observing() -> None:
            sampling.start()
            serving.append(asyncio.create_task(server.serve()))
            log.info("health endpoints", port=port, paths=["/healthz", "/readyz", "/metrics"])

        @app.on_shutdown
        async def stop_observing() -> None:
            server.should_exit = True
            await sampling.stop()
            for task in serving:
                await task


async def _undecoded_batch(
    message: Mapping[str, Any],
    parse: Callable[[Mapping[str, Any]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """FastStream's batch message for ``message``, its entries left undecoded.

    FastStream would parse every entry's JSON, serialise the batch to JSON and parse that
    again before the handler validates it; ``consume_batches`` validates each entry's bytes
    once instead. The message keeps the whole raw reply, which acknowledging uses.
    """
    parsed = await parse({**message, "data": []})
    parsed.raw_message = message
    return parsed


def _command_error(error: ResponseError) -> str:
    """Redis's own reason for a command a script ran ("WRONGTYPE ..."), without the wrapper
    naming the script ("Error running script (call to f_...): @user_script:3: ")."""
    text = str(error)
    return text.rpartition("@user_script:")[2].partition(": ")[2] or text
