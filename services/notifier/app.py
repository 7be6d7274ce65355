"""The notifier service: signals stream → alerts on every configured channel."""

from __future__ import annotations

from collections.abc import Sequence

from faststream import FastStream

from services.notifier.batches import BatchSettler
from services.notifier.deliver import Deliverer
from services.notifier.route import Router
from services.notifier.store import SubscriptionStore
from shared.logs import get_logger
from shared.loops import Loop
from shared.messages import DeliveryRecord, Signal, utc_now
from shared.service import Service
from shared.settings import Settings

log = get_logger(__name__)


BATCH_READ_COUNT = 100
"""Signals one notifier read takes unless ``FLASHPOINT_NOTIFIER_READ_COUNT`` is set.

A batch is kept claimed while it runs, so its size is bounded by the handler timeout (which
the whole batch shares; see :meth:`Router.route_batch`), not by the claim idle time.
"""


def read_count(settings: Settings) -> int:
    """How many signals one read takes: ``FLASHPOINT_NOTIFIER_READ_COUNT`` when set, else
    :data:`BATCH_READ_COUNT` (that variable's default, 1, was meant for one-at-a-time
    handling)."""
    if "notifier_read_count" in settings.model_fields_set:
        return settings.notifier_read_count
    return BATCH_READ_COUNT


def build(settings: Settings) -> tuple[FastStream, Service]:
    """The notifier app: stored subscriptions, plus ``FLASHPOINT_NOTIFY_URLS`` if set."""
    # consume_batches reads ``read_count`` entries at a time
    service = Service(settings.model_copy(update={"read_count": read_count(settings)}), "notifier")
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

    flusher = Loop("notifier group flusher", flush_due_groups)

    @app.after_startup
    async def start_flusher() -> None:
        flusher.start()

    @app.on_shutdown
    async def stop_flusher() -> None:
        await flusher.stop()

    @app.after_startup
    async def announce_subscriptions() -> None:
        subscriptions = await router.subscriptions()
        log.info("delivering to subscriptions", subscriptions=[s.name for s in subscriptions])
        if router.default is not None:
            channels = router.channels(router.default.urls)
            log.info("default subscription channels", channels=[c.masked for c in channels])

    return app, service
