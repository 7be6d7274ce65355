"""Which subscriptions hear of a signal: filters, quiet hours and the hourly cap."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import redis.asyncio as aioredis

from services.ingest.nearby import sources_key
from services.notifier.channels import Channel
from services.notifier.deliver import Deliverer, Message, RecordBatch, delivery_error
from services.notifier.formats import render_for
from services.notifier.incidents import (
    Group,
    IncidentBook,
    Pending,
    situation_of,
    update_title,
)
from services.notifier.store import SubscriptionStore
from services.notifier.subscriptions import DeliveryOptions, Subscription, rejection
from shared.logs import bound_report, get_logger
from shared.messages import DeliveryRecord, Severity, Signal
from shared.settings import Settings
from shared.streams import as_text

log = get_logger(__name__)

HOUR_S = 3600


def default_subscription(settings: Settings) -> Subscription | None:
    """``FLASHPOINT_NOTIFY_URLS`` as a subscription to everything, sent at once."""
    if not settings.notify_urls:
        return None
    return Subscription(
        name="default",
        urls=tuple(settings.notify_urls),
        delivery=DeliveryOptions(group_wait_s=0, group_interval_s=0),
    )


def quiet_reason(subscription: Subscription, signal: Signal, now: datetime) -> str | None:
    """Why quiet hours hold ``signal`` back (critical alerts go through), or None."""
    if signal.severity >= Severity.CRITICAL or not subscription.in_quiet_hours(now):
        return None
    return f"quiet hours in {subscription.timezone}"


@dataclass
class Routed:
    """What routing a batch left undone, by the signal's position in the batch."""

    failures: dict[int, dict[str, str]] = field(default_factory=dict)
    """Channels that still failed after their retries: ``"subscription channel"`` → why."""
    deferred: list[int] = field(default_factory=list)
    """Signals whose sends were put off: the batch would have outlasted its time."""

    @property
    def complete(self) -> bool:
        """Whether every signal of the batch was fully handled."""
        return not self.failures and not self.deferred


class Router:
    """Sends each signal to the subscriptions that want it, recording every decision."""

    def __init__(
        self,
        client: aioredis.Redis,
        settings: Settings,
        store: SubscriptionStore,
        deliverer: Deliverer,
    ) -> None:
        self.client = client
        self.settings = settings
        self.store = store
        self.deliverer = deliverer
        self.book = IncidentBook(client, settings)
        self.default = default_subscription(settings)
        self._channels: dict[str, Channel] = {}

    async def subscriptions(self) -> list[Subscription]:
        """The default subscription (if configured) and every stored one."""
        stored = await self.store.current()
        return [self.default, *stored] if self.default else stored

    async def route(self, signal: Signal, now: datetime) -> None:
        """Deliver ``signal`` where it is wanted; raise DeliveryFailed if a channel failed."""
        routed = await self.route_batch([signal], now)
        if routed.failures:
            raise delivery_error(routed.failures[0])

    async def route_batch(self, signals: Sequence[Signal], now: datetime) -> Routed:
        """Route a batch of signals (``none`` ones are skipped); return what is left undone.

        Subscriptions are read once. Filters, quiet hours, the hourly cap and grouping are
        decided for the whole batch with a few pipelined round trips; signals sent at once go
        out one signal after the other, in order. Delivery records are published together,
        and also right after each signal's sends, so the record of an alert that went out is
        never held back behind later signals; whatever is gathered is published before an
        error propagates. A channel failure does not stop the batch: it is reported in the
        result, with the signals whose sends were put off because the batch ran out of time.
        """
        records = self.deliverer.batch()
        try:
            routed = await self._route_batch(signals, now, records)
        except BaseException:
            try:
                await records.flush()
            except Exception as error:  # the original error matters more
                log.error("could not publish delivery records", error=str(error))
            raise
        await records.flush()
        return routed

    async def _route_batch(
        self, signals: Sequence[Signal], now: datetime, records: RecordBatch
    ) -> Routed:
        started = asyncio.get_running_loop().time()
        wanted = [i for i, signal in enumerate(signals) if signal.label != "none"]
        subscriptions = await self.subscriptions()
        holds = await self._reasons_to_hold(subscriptions, signals, wanted, now)
        grouped: list[Pending] = []
        grouped_records: list[DeliveryRecord] = []  # recorded once the signals are queued
        at_once: dict[int, list[Subscription]] = {}

        async def hold_grouped(record: DeliveryRecord) -> None:
            grouped_records.append(record)

        for i in wanted:
            signal = signals[i]
            for s, subscription in enumerate(subscriptions):
                reason = holds.get((s, i))
                if reason is not None:
                    await self.deliverer.note(
                        signal.id,
                        signal.label,
                        subscription.name,
                        "suppressed",
                        reason,
                        records.add,
                    )
                    continue
                options = subscription.delivery
                if options.group_wait_s or options.group_interval_s:
                    grouped.append(
                        Pending(
                            subscription.name,
                            signal,
                            options.group_wait_s,
                            options.group_interval_s,
                        )
                    )
                    await self.deliverer.note(
                        signal.id,
                        signal.label,
                        subscription.name,
                        "grouped",
                        f"incident {situation_of(signal)}",
                        hold_grouped,
                    )
                    continue
                at_once.setdefault(i, []).append(subscription)
        await self.book.add_many(grouped, now.timestamp())
        for record in grouped_records:
            await records.add(record)
        routed = Routed()
        if at_once:
            await self._send_at_once(signals, at_once, records, routed, started)
        return routed

    async def _send_at_once(
        self,
        signals: Sequence[Signal],
        at_once: dict[int, list[Subscription]],
        records: RecordBatch,
        routed: Routed,
        started: float,
    ) -> None:
        """Send each signal to the subscriptions that take it at once, in order.

        A signal is not started when its sends could outlast the handler timeout (all the
        batch shares one); it and the ones after it are put off, for the claimer to retry
        one at a time. The first one always goes.
        """
        loop = asyncio.get_running_loop()
        outlets = await self.outlets_each([signals[i] for i in at_once])
        longest_s = self.deliverer.policy.longest_s()
        for n, (i, subscriptions) in enumerate(at_once.items()):
            signal = signals[i]
            elapsed = loop.time() - started
            if routed.deferred or (
                n and elapsed + len(subscriptions) * longest_s > self.settings.handler_timeout_s
            ):
                routed.deferred.append(i)
                continue
            failures: dict[str, str] = {}
            with bound_report(signal.id):
                for subscription in subscriptions:
                    failed = await self.deliverer.deliver(
                        signal,
                        subscription.name,
                        subscription.timezone,
                        self.channels(subscription.urls),
                        plain=subscription.delivery.message_format == "text",
                        outlets=outlets[n],
                        record=records.add,
                    )
                    failures |= {
                        f"{subscription.name} {channel}": why for channel, why in failed.items()
                    }
            if failures:
                routed.failures[i] = failures
            await records.flush()  # this signal's sends are recorded before the next starts

    async def _reasons_to_hold(
        self,
        subscriptions: Sequence[Subscription],
        signals: Sequence[Signal],
        wanted: Sequence[int],
        now: datetime,
    ) -> dict[tuple[int, int], str]:
        """Why each (subscription, signal) pair is held back: filters, then quiet hours, then
        the hourly cap. A ceasefire on an incident a subscription was told was escalating
        passes its kinds filter (de-escalation)."""
        reasons: dict[tuple[int, int], str] = {}
        kind_only: list[tuple[int, int]] = []
        for s, subscription in enumerate(subscriptions):
            for i in wanted:
                reason = rejection(subscription, signals[i])
                if reason is None:
                    continue
                reasons[s, i] = reason
                if reason.startswith("kind") and signals[i].label == "ceasefire":
                    kind_only.append((s, i))
        escalating = await self.book.were_escalating(
            [(subscriptions[s].name, signals[i]) for s, i in kind_only]
        )
        for pair, was in zip(kind_only, escalating, strict=True):
            if was:
                del reasons[pair]  # whoever got the escalation hears of its de-escalation
        capped: dict[int, list[int]] = {}
        for s, subscription in enumerate(subscriptions):
            quiet = subscription.in_quiet_hours(now)  # once per subscription, not per signal
            for i in wanted:
                if (s, i) in reasons:
                    continue
                if quiet and (reason := quiet_reason(subscription, signals[i], now)):
                    reasons[s, i] = reason
                elif subscription.delivery.max_per_hour is not None:
                    capped.setdefault(s, []).append(i)
        if capped:
            reasons |= await self._over_cap(subscriptions, signals, capped, now)
        return reasons

    async def flush(self, now: datetime) -> int:
        """Send every group that is due; return how many went out."""
        lease_s = self.deliverer.policy.longest_s() + 5
        sent = 0
        for group in await self.book.take_due(now.timestamp(), lease_s):
            sent += await self._flush(group, now.timestamp())
        return sent

    async def _flush(self, group: Group, now: float) -> int:
        subscription = await self._subscription(group.subscription)
        if subscription is None:
            await self.book.forget(group)
            return 0
        options = subscription.delivery
        related: Sequence[Signal]
        if group.signals:
            lead_at = group.signals.lead_index()
            lead = group.signals[lead_at]
            label = group.signals.label(-1)
            update = update_title(group.previous, label, repeat=False)
            related = group.signals.without(lead_at)
            outlets = await self._outlets([(lead.id, lead.report.source), *related.sources()])
        else:
            announced = await self.book.last_announced(group)
            if announced is None or now - group.last_signal_at > 2 * options.repeat_interval_s:
                await self.book.forget(group)  # no report for two repeat intervals: over
                return 0
            lead, label, related = announced, group.previous or announced.label, []
            update = update_title(group.previous, label, repeat=True)
            outlets = await self.outlets([lead])
        message = Message(
            group.id,
            label,
            lambda style: render_for(
                "text" if options.message_format == "text" else style,
                lead,
                subscription.timezone,
                update,
                related,
                outlets,
            ),
        )
        failures = await self.deliverer.deliver_message(
            message, subscription.name, self.channels(subscription.urls)
        )
        if failures:
            log.warning("group delivery failed; it will be retried", failures=failures)
            return 0
        await self.book.remember(group, lead)
        await self.book.sent(group, label, now, options.group_interval_s, options.repeat_interval_s)
        return 1

    async def outlets(self, signals: Sequence[Signal]) -> int:
        """How many outlets carried these reports, near-duplicates ingest set aside included."""
        return await self._outlets([(signal.id, signal.report.source) for signal in signals])

    async def _outlets(self, reports: Sequence[tuple[str, str]]) -> int:
        """:meth:`outlets` of (report id, source) pairs, in one round trip."""
        names = {source for _, source in reports}
        async with self.client.pipeline(transaction=False) as pipe:
            for report_id, _ in reports:
                pipe.hkeys(sources_key(self.settings, report_id))
            for others in await pipe.execute():
                names |= {as_text(other) for other in others}
        return len(names)

    async def outlets_each(self, signals: Sequence[Signal]) -> list[int]:
        """:meth:`outlets` of each signal on its own, in one round trip."""
        async with self.client.pipeline(transaction=False) as pipe:
            for signal in signals:
                pipe.hkeys(sources_key(self.settings, signal.id))
            found = await pipe.execute()
        return [
            len({signal.report.source} | {as_text(other) for other in others})
            for signal, others in zip(signals, found, strict=True)
        ]

    async def _subscription(self, name: str) -> Subscription | None:
        if self.default is not None and name == self.default.name:
            return self.default
        return await self.store.get(name)

    def channels(self, urls: Sequence[str]) -> list[Channel]:
        """One reusable channel per URL."""
        for url in urls:
            if url not in self._channels:
                self._channels[url] = Channel(url)
        return [self._channels[url] for url in urls]

    async def _over_cap(
        self,
        subscriptions: Sequence[Subscription],
        signals: Sequence[Signal],
        capped: dict[int, list[int]],
        now: datetime,
    ) -> dict[tuple[int, int], str]:
        """Which signals go past their subscription's hourly cap, in one transaction.

        Each signal counts once (a redelivered one keeps its first time), and signals of one
        batch count in the order they arrived.
        """
        stamp = now.timestamp()
        async with self.client.pipeline(transaction=True) as pipe:
            for s, indices in capped.items():
                key = self.settings.key("rate", subscriptions[s].name)
                stamps: dict[str, float] = {}
                for n, i in enumerate(indices):
                    stamps.setdefault(signals[i].id, stamp + n * 1e-6)
                pipe.zadd(key, stamps, nx=True)
                pipe.zremrangebyscore(key, 0, stamp - HOUR_S)
                for i in indices:
                    pipe.zrank(key, signals[i].id)
                pipe.expire(key, HOUR_S)
            replies = iter(await pipe.execute())
        reasons: dict[tuple[int, int], str] = {}
        for s, indices in capped.items():
            cap = subscriptions[s].delivery.max_per_hour
            next(replies), next(replies)  # ZADD, ZREMRANGEBYSCORE
            for i in indices:
                rank = next(replies)
                if cap is not None and rank is not None and rank >= cap:
                    reasons[s, i] = f"more than {cap} alerts in the last hour"
            next(replies)  # EXPIRE
        return reasons
