"""Which subscriptions hear of a signal: filters, quiet hours and the hourly cap."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import redis.asyncio as aioredis

from services.ingest.nearby import sources_key
from services.notifier.channels import Channel
from services.notifier.deliver import Deliverer, Message, delivery_error
from services.notifier.formats import render_for
from services.notifier.incidents import (
    Group,
    IncidentBook,
    lead_signal,
    situation_of,
    update_title,
)
from services.notifier.store import SubscriptionStore
from services.notifier.subscriptions import DeliveryOptions, Subscription, rejection
from shared.logs import get_logger
from shared.messages import Severity, Signal
from shared.settings import Settings

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
        failures: dict[str, str] = {}
        outlets: int | None = None  # read once, and only if someone is told at once
        for subscription in await self.subscriptions():
            reason = await self._reason_to_hold(subscription, signal, now)
            if reason is not None:
                await self.deliverer.note(
                    signal.id, signal.label, subscription.name, "suppressed", reason
                )
                continue
            options = subscription.delivery
            if options.group_wait_s or options.group_interval_s:
                await self.book.add(
                    subscription.name,
                    signal,
                    now.timestamp(),
                    options.group_wait_s,
                    options.group_interval_s,
                )
                await self.deliverer.note(
                    signal.id,
                    signal.label,
                    subscription.name,
                    "grouped",
                    f"incident {situation_of(signal)}",
                )
                continue
            if outlets is None:
                outlets = await self.outlets([signal])
            failed = await self.deliverer.deliver(
                signal,
                subscription.name,
                subscription.timezone,
                self.channels(subscription.urls),
                plain=options.message_format == "text",
                outlets=outlets,
            )
            failures |= {f"{subscription.name} {channel}": why for channel, why in failed.items()}
        if failures:
            raise delivery_error(failures)

    async def _reason_to_hold(
        self, subscription: Subscription, signal: Signal, now: datetime
    ) -> str | None:
        reason = rejection(subscription, signal)
        if (
            reason is not None
            and reason.startswith("kind")
            and signal.label == "ceasefire"
            and await self.book.was_escalating(subscription.name, signal)
        ):
            reason = None  # whoever got the escalation hears of its de-escalation
        return (
            reason
            or quiet_reason(subscription, signal, now)
            or await self._over_cap(subscription, signal, now)
        )

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
        if group.signals:
            lead = lead_signal(group.signals)
            label = group.signals[-1].label
            update = update_title(group.previous, label, repeat=False)
            related = [s for s in group.signals if s.id != lead.id]
        else:
            announced = await self.book.last_announced(group)
            if announced is None or now - group.last_signal_at > 2 * options.repeat_interval_s:
                await self.book.forget(group)  # no report for two repeat intervals: over
                return 0
            lead, label, related = announced, group.previous or announced.label, []
            update = update_title(group.previous, label, repeat=True)
        outlets = await self.outlets([lead, *related])
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
        names = {signal.report.source for signal in signals}
        for signal in signals:
            others = await self.client.hkeys(sources_key(self.settings, signal.id))
            names |= {o.decode() if isinstance(o, bytes) else o for o in others}
        return len(names)

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
        self, subscription: Subscription, signal: Signal, now: datetime
    ) -> str | None:
        cap = subscription.delivery.max_per_hour
        if cap is None:
            return None
        key = self.settings.key("rate", subscription.name)
        stamp = now.timestamp()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {signal.id: stamp}, nx=True)
            pipe.zremrangebyscore(key, 0, stamp - HOUR_S)
            pipe.zrank(key, signal.id)
            pipe.expire(key, HOUR_S)
            _, _, rank, _ = await pipe.execute()
        if rank is not None and rank >= cap:
            return f"more than {cap} alerts in the last hour"
        return None
