"""The notifier service: signals stream → alerts on every configured channel."""

from __future__ import annotations

from faststream import FastStream

from services.notifier.deliver import Deliverer
from services.notifier.route import Router
from services.notifier.store import SubscriptionStore
from shared.logs import bound_report, get_logger
from shared.loops import Loop
from shared.messages import DeliveryRecord, Signal, utc_now
from shared.service import Service
from shared.settings import Settings

log = get_logger(__name__)


def build(settings: Settings) -> tuple[FastStream, Service]:
    """The notifier app: stored subscriptions, plus ``FLASHPOINT_NOTIFY_URLS`` if set."""
    service = Service(settings, "notifier")
    deliveries = service.publisher(settings.deliveries_stream, DeliveryRecord)
    deliverer = Deliverer(service.redis, settings, deliveries.publish)
    store = SubscriptionStore(service.redis, settings)
    router = Router(service.redis, settings, store, deliverer)

    async def on_signal(signal: Signal) -> None:
        with bound_report(signal.id):
            if signal.label == "none":
                log.debug("no signal; nothing to send")
                return
            await router.route(signal, utc_now())

    service.consume(
        service.input_stream,
        on_signal,
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
