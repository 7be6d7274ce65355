"""Settling a batch of signals that routing left partly undone.

``Service.consume_batches`` acknowledges a batch when its process returns and leaves all of
it pending when it raises. When only some signals of a batch failed, the notifier settles
the batch entry by entry first, as the single-entry path would have: the signals that were
fully handled are acknowledged (their delivery records are already published), the ones
every failing channel refused for good are dead-lettered at once, and only the rest stay
pending for the claimer, which retries them one at a time. Without that, one failing channel
would send every other signal of the batch through the claimer too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faststream.redis.message import RedisBatchStreamMessage

from services.notifier.deliver import DeliveryFailed, delivery_error
from services.notifier.route import Routed
from shared.logs import bound_report, get_logger
from shared.messages import Signal
from shared.service import Service
from shared.streams import (
    PermanentError,
    as_text,
    describe_error,
    entry_fields,
    entry_id,
)

log = get_logger(__name__)


class BatchIncomplete(DeliveryFailed):
    """Some signals of a batch are left pending for the claimer (the batch as a whole)."""


def routing_error(
    signals: Sequence[Signal], routed: Routed, only: Sequence[int] | None = None
) -> DeliveryFailed:
    """The error that leaves what ``routed`` left undone (of ``only``, if given) for a retry.

    For a batch of one signal it is what routing that signal alone raises (permanent when
    every failing channel refused for good); for more, each failure names its signal.
    """
    if len(signals) == 1 and routed.failures:
        return delivery_error(routed.failures[0])
    wanted = set(range(len(signals)) if only is None else only)
    failures = {
        f"{signals[i].id} {where}": why
        for i, channels in routed.failures.items()
        if i in wanted
        for where, why in channels.items()
    }
    for i in routed.deferred:
        if i in wanted:
            failures[signals[i].id] = "put off: the batch ran out of time"
    return BatchIncomplete(failures)


class BatchSettler:
    """Settles each entry of a batch that routing left partly undone (see the module)."""

    def __init__(self, service: Service, stream: str) -> None:
        self.service = service
        self.stream = stream

    async def settle(self, signals: Sequence[Signal], routed: Routed) -> None:
        """Return when every signal is settled; raise to leave the others pending.

        Outside a batch read (the claimer's one-at-a-time retries), or when the entries
        cannot be matched to the signals, it raises for all of them, and the delivery guard
        or the claimer settles them as usual.
        """
        if routed.complete:
            return
        message = self.service.broker.context.get_local("message")
        entries = self._entries(message, signals)
        if entries is None:
            raise routing_error(signals, routed)
        guard = self.service.guard
        undone = set(routed.failures) | set(routed.deferred)
        settled = [entries[i] for i in range(len(signals)) if i not in undone]
        retry = list(routed.deferred)
        for i, failures in routed.failures.items():
            error = delivery_error(failures)
            deliveries = await guard.deliveries(entries[i])
            if (
                isinstance(error, PermanentError)
                or deliveries >= self.service.settings.max_deliveries
            ):
                await self._dead_letter(entries[i], signals[i], error, deliveries)
                settled.append(entries[i])
            else:
                retry.append(i)
        if settled:
            await self.service.redis.xack(
                self.stream, guard.group, *[entry_id(entry) for entry in settled]
            )
        if not retry:
            return  # consume_batches acknowledges the batch and counts it processed
        retry.sort()
        guard.count(self.stream, "processed", len(signals) - len(undone))
        guard.count(self.stream, "failed", len(retry))
        log.warning(
            "signals of a batch stay pending for a retry; the rest of the batch is settled",
            stream=self.stream,
            entry_ids=[entry_id(entries[i]) for i in retry],
            report_ids=[signals[i].id for i in retry],
        )
        raise routing_error(signals, routed, retry)

    def _entries(self, message: Any, signals: Sequence[Signal]) -> list[dict[str, Any]] | None:
        """The raw entry of each signal of a batch read from this stream, else None."""
        if not isinstance(message, RedisBatchStreamMessage):
            return None
        entries = self.service.entries()
        if as_text(message.raw_message["channel"]) != self.stream or len(entries) != len(signals):
            return None
        return entries

    async def _dead_letter(
        self, entry: dict[str, Any], signal: Signal, error: Exception, deliveries: int
    ) -> None:
        guard = self.service.guard
        guard.count(self.stream, "dead_lettered", 1)
        with bound_report(signal.id):
            await self.service.dead_letters.record(
                origin_stream=self.stream,
                entry_id=entry_id(entry),
                group=guard.group,
                consumer=guard.consumer,
                deliveries=deliveries,
                error=describe_error(error),
                error_type=type(error).__name__,
                payload=entry_fields(entry),
                report_id=signal.id,
            )
