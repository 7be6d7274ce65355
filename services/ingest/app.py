"""The ingest service: inbox → normalise → drop duplicates → reports stream."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Sequence

from faststream import FastStream

from services.ingest.dedup import Deduplicator
from services.ingest.nearby import Lookup, StoryIndex
from services.ingest.normalize import to_report
from services.ingest.sources.base import configured_sources
from services.ingest.sources.runner import SourceRunner, stats_key
from services.ingest.webhook import build_webhook, read_token, webhook_server
from shared.logs import get_logger
from shared.messages import RawReport, Report, utc_now
from shared.service import Service
from shared.settings import Settings
from shared.streams import entry_id

log = get_logger(__name__)
_log_level = logging.getLogger(__name__)  # structlog renders through it (shared.logs)


class PublishError(Exception):
    """Publishing a batch of reports failed; the message leads with Redis's own reason."""

    def __init__(self, stream: str, error: Exception) -> None:
        super().__init__(f"could not publish to {stream}: {error or type(error).__name__}")


class Ingest:
    """Turns a batch of raw reports into published reports, dropping duplicates.

    A batch costs the same few Redis round trips whatever its size: one script call claims
    every report's URL and text (exact duplicates, also within the batch), one looks up
    near-duplicates (also within the batch), one pipeline publishes the new reports, one
    script call indexes them, and, when there were duplicates, one pipeline records the
    other outlets of their stories and counts them. If the publication fails, the batch's
    claims are released and the error re-raised, so the retry of its entries (one at a time,
    through this same code) or a later replay is not taken for a duplicate.
    """

    def __init__(self, service: Service, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.dedup = Deduplicator(service.redis, settings)
        self.stories = StoryIndex(service.redis, settings)

    async def __call__(self, raws: list[RawReport]) -> None:
        """Process reports read from the inbox, the ids of their entries taken from the
        message being handled (a batch, or one entry the claimer retries)."""
        await self.process(raws, self.entry_ids(raws))

    def entry_ids(self, raws: Sequence[RawReport]) -> list[str]:
        """The inbox entry ids of ``raws``, the valid entries of the batch being handled (or
        the one entry the claimer retries).

        They make the dedup tokens: a redelivered entry claims its report again with the
        same token, and is not taken for a duplicate of itself.
        """
        ids = [entry_id(entry) for entry in self.service.entries()]
        if len(ids) != len(raws):
            msg = f"{len(raws)} reports but {len(ids)} valid entries in the message"
            raise RuntimeError(msg)
        return ids

    async def process(self, raws: Sequence[RawReport], entry_ids: Sequence[str]) -> None:
        """Normalise, deduplicate and publish ``raws``, read from the entries ``entry_ids``."""
        fetched_at = utc_now()
        reports = [to_report(raw, fetched_at=fetched_at) for raw in raws]
        tokens = [f"{entry} {report.id}" for entry, report in zip(entry_ids, reports, strict=True)]
        owners = await self.dedup.first_seen_many(reports, tokens)
        claimed = [n for n, owner in enumerate(owners) if owner is None]
        found = await self.stories.lookup([reports[n] for n in claimed])
        lookups = dict(zip(claimed, found, strict=True))
        fresh = [n for n in claimed if lookups[n].story is None]
        if fresh:
            try:
                await self.service.publish_many(
                    self.settings.reports_stream, [reports[n] for n in fresh]
                )
            except Exception as error:
                await self._release([reports[n] for n in claimed], [tokens[n] for n in claimed])
                raise PublishError(self.settings.reports_stream, error) from error

        published = set(fresh)
        new_stories: list[tuple[str, int]] = []
        for n in fresh:
            if (value := lookups[n].simhash) is not None:
                new_stories.append((reports[n].id, value))
        await self.stories.add(new_stories)
        outlets: dict[int, int] = {}
        if len(published) < len(reports):
            async with self.service.redis.pipeline(transaction=False) as pipe:
                for n in claimed:
                    if (story := lookups[n].story) is not None:
                        outlets[n] = self.stories.corroborate(pipe, story, reports[n])
                duplicates = Counter(r.source for n, r in enumerate(raws) if n not in published)
                for source, count in duplicates.items():
                    pipe.hincrby(stats_key(self.settings, source), "duplicates", count)
                results = await pipe.execute()
            outlets = {n: int(results[at]) for n, at in outlets.items()}

        if _log_level.isEnabledFor(logging.INFO):  # skip structlog's processors when off
            self._log(reports, owners, lookups, outlets)

    async def _release(self, reports: list[Report], tokens: list[str]) -> None:
        """Release claims after a failed publication; the publication's error is the one
        that matters, so a failure here is only logged."""
        try:
            await self.dedup.release_many(reports, tokens)
        except Exception as error:
            log.warning("could not release dedup claims", reports=len(reports), error=str(error))

    @staticmethod
    def _log(
        reports: list[Report],
        owners: list[str | None],
        lookups: dict[int, Lookup],
        outlets: dict[int, int],
    ) -> None:
        """One line per report: what became of it."""
        for n, report in enumerate(reports):
            owner = owners[n]
            if owner is not None:
                log.info(
                    "duplicate dropped", report_id=report.id, duplicate_of=owner.split(" ")[-1]
                )
            elif (story := lookups[n].story) is not None:
                log.info(
                    "near-duplicate: another outlet carries the story",
                    report_id=report.id,
                    story=story,
                    outlets=outlets[n] + 1,
                )
            else:
                log.info(
                    "report published",
                    report_id=report.id,
                    source=report.source,
                    title=report.title[:120],
                )


def build(settings: Settings) -> tuple[FastStream, Service]:
    """The ingest app, with its JSONL source when ``FLASHPOINT_JSONL_PATH`` is set."""
    service = Service(settings, "ingest")
    service.publisher(settings.reports_stream, Report)  # documents the contract
    inbox = service.publisher(settings.inbox_stream, RawReport)
    ingest = Ingest(service, settings)
    service.consume_batches(
        service.input_stream,
        RawReport,
        ingest,
        description="Raw reports from sources and outside programs (XADD).",
    )
    app = service.app()
    app.on_startup(ingest.stories.prepare)

    runner = SourceRunner(
        configured_sources(settings), service.redis, settings, inbox.publish, service.dead_letters
    )

    @app.after_startup
    async def start_sources() -> None:
        for source in runner.sources:
            log.info("source started", source=source.entry.name, type=source.entry.type)
        await runner.start()

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
