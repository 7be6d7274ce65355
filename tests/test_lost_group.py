"""A service whose consumer group vanishes (Redis lost its data) recreates it and carries on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from shared.settings import Settings
from tests.conftest import service_env, start_service, stream_entries, wait_for
from tests.factories import make_report

pytestmark = pytest.mark.slow


async def test_classifier_recreates_its_group_and_keeps_working(
    settings: Settings, redis: aioredis.Redis, tmp_path: Path
) -> None:
    """Streams and group deleted under a running classifier: it says so, then goes on."""
    env = service_env(settings, log_format="json")
    log = tmp_path / "classifier.log"
    process = start_service("classifier", env, log)
    try:
        first = make_report(id="r-before", title="", text="Artillery shelled the border.")
        await redis.xadd(settings.reports_stream, {"__data__": first.model_dump_json()})
        await wait_for(lambda: stream_entries(redis, settings.signals_stream), within=30)
        # Both of its subscribers must be running, or the one still starting recreates the group.
        await wait_for(lambda: "started successfully" in log.read_text(), within=30)

        await redis.delete(settings.reports_stream)  # as if Redis restarted without its data
        await wait_for(lambda: "consumer group lost" in log.read_text(), within=30)

        second = make_report(id="r-after", title="", text="Troops clashed again at the border.")
        await redis.xadd(settings.reports_stream, {"__data__": second.model_dump_json()})
        signals = await wait_for(
            lambda: _has(stream_entries(redis, settings.signals_stream), "r-after"), within=30
        )
        assert process.poll() is None, "the classifier must keep running"
    finally:
        process.terminate()
        process.wait(15)
    assert any(s["report"]["id"] == "r-after" for s in signals)
    assert "entries and pending entries from before are gone" in log.read_text()


async def _has(entries: Any, report_id: str) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await entries
    return found if any(s["report"]["id"] == report_id for s in found) else None
