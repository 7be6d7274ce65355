"""The notifier service: signals stream → alerts on every configured channel."""

from __future__ import annotations

import time
from collections.abc import Sequence

from faststream import FastStream

from services.notifier.batches import BatchSettler
from services.notifier.deadman import DeadMansSwitch
from services.notifier.deliver import Deliverer
from services.notifier.route import Router
from services.notifier.store import SubscriptionStore
from shared.logs import get_logger
from shared.loops import Loop
from shared.messages import DeliveryRecord, Signal, utc_now
from shared.service import Service
from shared.settings import Settings

log = get_logger(__name__)


def build(settings: Settings) -> tuple[FastStream, Service]:
    """The notifier app: stored subscriptions, plus ``FLASHPOINT_NOTIFY_URLS`` if set."""
    service = Service(settings, "notifier")
    deliveries = service.publisher(settings.deliveries_stream, DeliveryRecord)

    async def record_many(records: Sequence[DeliveryRecord]) -> None:
        await service.publish_many(settings.deliveries_stream, records)

    deliverer = Deliverer(service.redis, settings, deliveries.publish, record_many)
    store = SubscriptionStore(service.redis, settings)
    router = Router(service.redis, settings, store, deliverer)
    settler = BatchSettler(service, service.input_stream)

    async def route_signals(signals: list[Signal]) -> None:
        routed = await router.route_batch(signals, utc_now())
        await settler.settle(signals, routed)

    service.consume_batches(
        service.input_stream,
        Signal,
        route_signals,
        description="Classified reports; escalation and ceasefire signals become alerts.",
        read_count=settings.notifier_read_count,
    )
    app = service.app()

    @app.on_startup
    async def load_subscriptions() -> None:
        if settings.subscriptions_file is not None:
            changes = await store.load_file(settings.subscriptions_file)
            log.info("subscriptions loaded", file=str(settings.subscriptions_file), **changes)

    async def flush_due_groups() -> float:
        await router.flush(utc_now())
        return settings.flush_interval_s

    deadman = DeadMansSwitch(service.redis, settings, router, deliverer)

    async def check_sources() -> float:
        await deadman.check(time.time())
        return settings.deadman_check_s

    loops = [
        Loop("notifier group flusher", flush_due_groups),
        Loop("dead man's switch", check_sources),
    ]

    @app.after_startup
    async def start_loops() -> None:
        for loop in loops:
            loop.start()

    @app.on_shutdown
    async def stop_loops() -> None:
        for loop in loops:
            await loop.stop()

    @app.after_startup
    async def announce_subscriptions() -> None:
        subscriptions = await router.subscriptions()
        log.info("delivering to subscriptions", subscriptions=[s.name for s in subscriptions])
        if router.default is not None:
            channels = router.channels(router.default.urls)
            log.info("default subscription channels", channels=[c.masked for c in channels])

    return app, service
