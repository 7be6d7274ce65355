"""The JSON Lines source: replays a file or folder, follows it, and keeps its place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.ingest.app import build as build_ingest
from services.ingest.sources.jsonl import JsonlOptions, JsonlSource, parse_line
from services.ingest.sources.runner import SourceRunner
from shared.service import Service
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for


def write_lines(path: Path, *items: object) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for item in items:
            handle.write((item if isinstance(item, str) else json.dumps(item)) + "\n")


class Recorder:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    async def __call__(self, item: dict[str, Any]) -> None:
        self.items.append(item)


def source_for(
    path: Path,
    redis: aioredis.Redis,
    settings: Settings,
    publish: Recorder | None = None,
    service: Service | None = None,
) -> JsonlSource:
    """A jsonl source over ``path``; dead letters go through ``service`` (which must run)."""
    service = service or Service(settings, "ingest")
    runner = SourceRunner([], redis, settings, publish or Recorder(), service.dead_letters)
    return JsonlSource(JsonlOptions(path=path), runner.context("jsonl"))


class TestJsonlSource:
    async def test_folder_is_read_in_order_and_followed(
        self, tmp_path: Path, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """Every *.jsonl file is read; lines and files added later are picked up once."""
        write_lines(tmp_path / "a.jsonl", {"text": "one"}, {"text": "two"})
        (tmp_path / "notes.txt").write_text("not a feed\n")
        publish = Recorder()
        source = source_for(tmp_path, redis, settings, publish)
        assert await source.poll() == 2
        write_lines(tmp_path / "a.jsonl", {"text": "three"})
        write_lines(tmp_path / "b.jsonl", {"text": "four"})
        assert await source.poll() == 2
        assert await source.poll() == 0
        assert [i["text"] for i in publish.items] == ["one", "two", "three", "four"]

    async def test_restart_continues_where_it_stopped(
        self, tmp_path: Path, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A new source over the same Redis does not republish what was read."""
        feed = tmp_path / "feed.jsonl"
        write_lines(feed, {"text": "one"})
        await source_for(feed, redis, settings).poll()
        write_lines(feed, {"text": "two"})
        again = Recorder()
        await source_for(feed, redis, settings, again).poll()
        assert again.items == [{"source": "jsonl", "text": "two"}]

    async def test_partial_last_line_waits_until_complete(
        self, tmp_path: Path, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """A line still being written is read only once its newline arrives."""
        feed = tmp_path / "feed.jsonl"
        feed.write_text('{"text": "whole"}\n{"text": "ha')
        publish = Recorder()
        source = source_for(feed, redis, settings, publish)
        await source.poll()
        with feed.open("a") as handle:
            handle.write('lf"}\n')
        await source.poll()
        assert [i["text"] for i in publish.items] == ["whole", "half"]

    async def test_bad_lines_are_dead_lettered_with_file_and_line(
        self, tmp_path: Path, settings: Settings, redis: aioredis.Redis
    ) -> None:
        """Lines that are not JSON objects go to the dead-letter stream; the rest flow."""
        feed = tmp_path / "feed.jsonl"
        write_lines(feed, {"text": "ok"}, "{broken", "[1, 2]", "", {"text": "also ok"})
        publish = Recorder()
        async with running(build_ingest(settings)) as service:
            await source_for(feed, redis, settings, publish, service).poll()
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
        assert [i["text"] for i in publish.items] == ["ok", "also ok"]
        assert [(d["entry_id"], d["payload"]["line"].strip()) for d in letters] == [
            ("line 2", "{broken"),
            ("line 3", "[1, 2]"),
        ]
        assert letters[0]["origin_stream"] == "source:jsonl"
        assert str(feed) in letters[0]["error"]
        assert "not valid JSON" in letters[0]["error"]
        assert "expected a JSON object, got list" in letters[1]["error"]

    def test_oversized_line_is_refused(self) -> None:
        """A line over the size cap is refused without being parsed."""
        with pytest.raises(ValueError, match="the limit is"):
            parse_line(b'{"text": "' + b"x" * 1_000_001 + b'"}\n')


class TestIngestWithJsonl:
    async def test_demo_style_feed_reaches_reports_stream(
        self, tmp_path: Path, make_settings: Any, redis: aioredis.Redis
    ) -> None:
        """With FLASHPOINT_JSONL_PATH set, ingest publishes the file's reports, deduplicated."""
        feed = tmp_path / "feed.jsonl"
        write_lines(
            feed,
            {"text": "Shelling near the border.", "url": "https://e.org/1"},
            {"text": "Shelling near the border, again.", "url": "https://e.org/1?utm_x=1"},
        )
        settings = make_settings(jsonl_path=feed, jsonl_poll_s=0.05)
        async with running(build_ingest(settings)):
            reports = await wait_for(lambda: stream_entries(redis, settings.reports_stream))
            await wait_for(lambda: _inbox_len(redis, settings, 2))
        assert len(reports) == 1
        assert reports[0]["url"] == "https://e.org/1"


async def _inbox_len(redis: aioredis.Redis, settings: Settings, n: int) -> bool:
    summary = await redis.xpending(settings.inbox_stream, settings.ingest_group)
    return await redis.xlen(settings.inbox_stream) == n and summary["pending"] == 0
