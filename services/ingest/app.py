"""The ingest service: inbox → normalise → drop duplicates → reports stream."""

from __future__ import annotations

import asyncio
import json

from faststream import FastStream
from faststream.redis.annotations import RedisStreamMessage

from services.ingest.dedup import Deduplicator
from services.ingest.nearby import StoryIndex
from services.ingest.normalize import to_report
from services.ingest.sources.base import configured_sources
from services.ingest.sources.runner import SourceRunner, stats_key
from services.ingest.webhook import build_webhook, read_token, webhook_server
from shared.logs import bound_report, get_logger
from shared.messages import RawReport, Report, utc_now
from shared.service import Service
from shared.settings import Settings
from shared.streams import entry_id

log = get_logger(__name__)


def build(settings: Settings) -> tuple[FastStream, Service]:
    """The ingest app, with its JSONL source when ``FLASHPOINT_JSONL_PATH`` is set."""
    service = Service(settings, "ingest")
    reports = service.publisher(settings.reports_stream, Report)
    inbox = service.publisher(settings.inbox_stream, RawReport)
    dedup = Deduplicator(service.redis, settings)
    stories = StoryIndex(service.redis, settings)

    async def on_raw_report(raw: RawReport, msg: RedisStreamMessage) -> None:
        report = to_report(raw, fetched_at=utc_now())
        with bound_report(report.id):
            token = f"{entry_id(msg.raw_message)} {report.id}"
            owner = await dedup.first_seen(report, token)
            if owner is not None:
                log.info("duplicate dropped", duplicate_of=owner.split(" ")[-1])
                await service.redis.hincrby(stats_key(settings, raw.source), "duplicates", 1)
                return
            story = await stories.story_of(report)
            if story is not None:
                outlets = await stories.corroborate(story, report)
                log.info(
                    "near-duplicate: another outlet carries the story",
                    story=story,
                    outlets=outlets + 1,
                )
                await service.redis.hincrby(stats_key(settings, raw.source), "duplicates", 1)
                return
            try:
                await reports.publish(report)
            except Exception:
                await dedup.release(report, token)  # a retry or a replay must not be a duplicate
                raise
            await stories.add(report)
            log.info("report published", source=report.source, title=report.title[:120])

    service.consume(
        service.input_stream,
        on_raw_report,
        description="Raw reports from sources and outside programs (XADD).",
    )
    app = service.app()

    runner = SourceRunner(
        configured_sources(settings), service.redis, settings, inbox.publish, service.dead_letters
    )

    @app.after_startup
    async def start_sources() -> None:
        for source in runner.sources:
            log.info("source started", source=source.entry.name, type=source.entry.type)
        runner.start()

    @app.on_shutdown
    async def stop_sources() -> None:
        await runner.stop()

    if settings.webhook_port is not None:
        _serve_webhook(app, service, settings)
    return app, service


def _serve_webhook(app: FastStream, service: Service, settings: Settings) -> None:
    """Run the webhook inside the ingest's event loop, started and stopped with the app."""
    assert settings.webhook_port is not None

    async def accept(report: RawReport) -> str:
        entry = await service.redis.xadd(
            settings.inbox_stream,
            {"__data__": report.model_dump_json(exclude_unset=True)},
            maxlen=settings.stream_maxlen,
            approximate=True,
        )
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    async def reject(index: int, reason: str, item: object) -> None:
        await service.dead_letters.record(
            origin_stream="source:webhook",
            entry_id=f"item {index}",
            error=reason,
            error_type="InvalidReport",
            payload={"item": json.dumps(item, ensure_ascii=False, default=str)[:100_000]},
        )

    server = webhook_server(
        build_webhook(settings, read_token(settings), accept, reject),
        settings.webhook_host,
        settings.webhook_port,
    )
    tasks: list[asyncio.Task[None]] = []

    @app.after_startup
    async def start_webhook() -> None:
        tasks.append(asyncio.create_task(server.serve()))
        log.info("webhook listening", host=settings.webhook_host, port=settings.webhook_port)

    @app.on_shutdown
    async def stop_webhook() -> None:
        server.should_exit = True
        for task in tasks:
            await task
