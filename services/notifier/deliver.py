"""Delivering one alert to every channel: retried, recorded, and never twice to a channel."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from services.notifier.channels import Channel, SendResult
from services.notifier.formats import Rendered, Style, render_for
from shared.logs import get_logger
from shared.messages import DeliveryOutcome, DeliveryRecord, Label, Signal
from shared.observe import DELIVERIES
from shared.settings import Settings
from shared.streams import PermanentError

log = get_logger(__name__)

Record = Callable[[DeliveryRecord], Awaitable[object]]
RecordMany = Callable[[Sequence[DeliveryRecord]], Awaitable[object]]

SENDING = b"sending"
SENT = b"sent"
INTERRUPTED = (
    "a notifier began sending it and stopped before the channel's answer was recorded; "
    "not resent, so the channel may or may not have it (FLASHPOINT_INTERRUPTED_SEND=skip)"
)


@dataclass(frozen=True)
class Message:
    """What to deliver: an id that makes it idempotent, its label, and how to write it."""

    id: str
    label: Label
    render: Callable[[Style], Rendered]


PERMANENT = "refused for good: "


class DeliveryFailed(Exception):
    """Some channels still failed after their retries; the signal will be tried again."""

    def __init__(self, failures: dict[str, str]) -> None:
        super().__init__(
            "delivery failed on " + "; ".join(f"{ch}: {why}" for ch, why in failures.items())
        )
        self.failures = failures


class DeliveryRefused(DeliveryFailed, PermanentError):
    """Every failing channel refused for good (a 4xx): dead-letter without retrying."""


def delivery_error(failures: dict[str, str]) -> DeliveryFailed:
    """The error for ``failures``: permanent only when every one of them is."""
    if all(why.startswith(PERMANENT) for why in failures.values()):
        return DeliveryRefused(failures)
    return DeliveryFailed(failures)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter."""

    attempts: int
    backoff_s: float
    timeout_s: float

    def longest_s(self) -> float:
        """The longest all attempts can take, pauses included."""
        pauses = sum(self.backoff_s * 2.0 ** (n - 1) * 1.5 for n in range(1, self.attempts))
        return self.attempts * self.timeout_s + pauses

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed ``attempt`` (1-based)."""
        base: float = self.backoff_s * 2.0 ** (attempt - 1)
        return base * random.uniform(0.5, 1.5)


class RecordBatch:
    """Delivery records gathered while a batch is routed, published together on :meth:`flush`.

    Records that could not be published stay gathered, so a later flush tries them again.
    """

    def __init__(self, record: Record, record_many: RecordMany | None = None) -> None:
        self._record = record
        self._record_many = record_many
        self._pending: list[DeliveryRecord] = []

    async def add(self, record: DeliveryRecord) -> None:
        """Gather one record (a :data:`Record` sink, so the deliverer can write to it)."""
        self._pending.append(record)

    async def flush(self) -> None:
        """Publish every gathered record, in one round trip when the deliverer can."""
        while self._pending:
            if self._record_many is not None:
                records = list(self._pending)
                await self._record_many(records)
                del self._pending[: len(records)]
            else:
                await self._record(self._pending[0])
                del self._pending[0]


class Deliverer:
    """Sends alerts to channels, remembering in Redis which channel got which signal.

    ``record`` publishes one delivery record; ``record_many``, if given, publishes many in
    one round trip (see :meth:`batch`).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        settings: Settings,
        record: Record,
        record_many: RecordMany | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.record = record
        self.record_many = record_many
        self.policy = RetryPolicy(
            settings.notify_attempts, settings.notify_backoff_s, settings.notify_timeout_s
        )

    def batch(self) -> RecordBatch:
        """A place to gather the records of one batch and publish them together."""
        return RecordBatch(self.record, self.record_many)

    def sent_key(self, message_id: str, subscription: str, channel: Channel) -> str:
        """The key that leases a message on ``channel`` while sending, then marks it sent."""
        return self.settings.key("sent", message_id, subscription, channel.digest)

    async def deliver(
        self,
        signal: Signal,
        subscription: str,
        timezone: str,
        channels: Sequence[Channel],
        plain: bool = False,
        outlets: int = 1,
        record: Record | None = None,
    ) -> dict[str, str]:
        """Deliver one signal to all of a subscription's channels; return the failures.

        Each channel gets the alert written for its kind (email, Slack, Telegram, text), or
        plain text everywhere when ``plain``. Records go to ``record`` (default: published
        one by one).
        """
        return await self.deliver_message(
            Message(
                signal.id,
                signal.label,
                lambda style: render_for(
                    "text" if plain else style, signal, timezone, outlets=outlets
                ),
            ),
            subscription,
            channels,
            record,
        )

    async def deliver_message(
        self,
        message: Message,
        subscription: str,
        channels: Sequence[Channel],
        record: Record | None = None,
    ) -> dict[str, str]:
        """Deliver ``message`` to every channel at once; return the failures by channel."""
        sink = record or self.record
        outcomes = await asyncio.gather(
            *(self._deliver_one(message, subscription, channel, sink) for channel in channels)
        )
        return {ch.masked: why for ch, why in zip(channels, outcomes, strict=True) if why}

    async def note(
        self,
        message_id: str,
        label: Label,
        subscription: str,
        outcome: DeliveryOutcome,
        reason: str,
        record: Record | None = None,
    ) -> None:
        """Record a decision that sent nothing (suppressed, grouped), and why."""
        await (record or self.record)(
            DeliveryRecord(
                signal_id=message_id,
                label=label,
                subscription=subscription,
                outcome=outcome,
                reason=reason,
            )
        )

    async def _deliver_one(
        self, message: Message, subscription: str, channel: Channel, record: Record
    ) -> str | None:
        key = self.sent_key(message.id, subscription, channel)
        state = await self._take_lease(key)
        if state == "sent":
            await self._record(record, message, subscription, channel, "duplicate", 0)
            return None
        if state == "busy":
            return "another notifier is still delivering it"
        started = f"{key}:started"
        if self.settings.interrupted_send == "skip" and await self.client.exists(started):
            await self.client.set(key, SENT, ex=self.settings.dedup_window_s)
            await self._record(record, message, subscription, channel, "uncertain", 0, INTERRUPTED)
            log.warning("alert not resent: its sending was interrupted", channel=channel.masked)
            return None
        await self.client.set(started, 1, ex=self.settings.dedup_window_s)
        attempt, result = await self._send_with_retries(message.render(channel.style), channel)
        if result.ok:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(key, SENT, ex=self.settings.dedup_window_s)
                pipe.delete(started)
                await pipe.execute()
            await self._record(record, message, subscription, channel, "sent", attempt)
            log.info("alert sent", channel=channel.masked, attempts=attempt)
            return None
        await self.client.delete(key, started)
        await self._record(record, message, subscription, channel, "failed", attempt, result.error)
        reason = result.error or "unknown error"
        return f"{PERMANENT}{reason}" if result.permanent else reason

    async def _take_lease(self, key: str) -> Literal["ours", "sent", "busy"]:
        """Lease ``key`` for sending. If another notifier holds it, wait for that lease to end
        (it sent the alert, or it died and the lease expires) rather than fail at once."""
        lease_ms = int((self.policy.longest_s() + 5) * 1000)
        deadline = asyncio.get_running_loop().time() + lease_ms / 1000 + 5
        while True:
            if await self.client.set(key, SENDING, nx=True, px=lease_ms):
                return "ours"
            if await self.client.get(key) in (SENT, SENT.decode()):
                return "sent"
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return "busy"
            ttl_ms = await self.client.pttl(key)
            await asyncio.sleep(min(max(ttl_ms, 50) / 1000, 1.0, remaining))

    async def _send_with_retries(self, alert: Rendered, channel: Channel) -> tuple[int, SendResult]:
        result = SendResult(ok=False, error="not attempted")
        attempt = 0
        for attempt in range(1, self.policy.attempts + 1):
            try:
                result = await channel.send(
                    alert.title, alert.body, self.policy.timeout_s, alert.body_format
                )
            except Exception as error:  # a plugin bug must not stop the other channels
                result = SendResult(
                    ok=False, error=channel.scrub(f"{type(error).__name__}: {error}")
                )
            if result.ok or result.permanent:
                break
            log.warning(
                "channel send failed", channel=channel.masked, attempt=attempt, error=result.error
            )
            if attempt < self.policy.attempts:
                pause = self.policy.pause(attempt)
                if result.rate_limited:
                    pause = max(pause, self.settings.rate_limit_wait_s)
                await asyncio.sleep(pause)
        return attempt, result

    async def _record(
        self,
        record: Record,
        message: Message,
        subscription: str,
        channel: Channel,
        outcome: str,
        attempts: int,
        error: str | None = None,
    ) -> None:
        DELIVERIES.labels(channel.masked, outcome).inc()
        await record(
            DeliveryRecord.model_validate(
                {
                    "signal_id": message.id,
                    "label": message.label,
                    "subscription": subscription,
                    "channel": channel.masked,
                    "outcome": outcome,
                    "attempts": attempts,
                    "error": error,
                }
            )
        )
