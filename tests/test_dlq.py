"""`flashpoint dlq`: dead letters can be listed, shown and replayed once the cause is fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis.asyncio as aioredis

from services.ingest.app import build as build_ingest
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for


def dlq(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **{
            f"FLASHPOINT_{name.upper()}": str(getattr(settings, name))
            for name in ("redis_url", "inbox_stream", "dead_letter_stream", "reports_stream")
        },
    }
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_list_show_replay(settings: Settings, redis: aioredis.Redis) -> None:
    """A report that failed while the reports stream was broken is replayed after the fix."""
    await redis.set(settings.reports_stream, "broken")  # the cause: every publish fails
    async with running(build_ingest(settings)):
        await redis.xadd(settings.inbox_stream, {"text": "Shelling near the border."})
        await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream), within=15)
    listed = dlq(settings, "list")
    entry_id = listed.stdout.split("\t", 1)[0]
    assert settings.inbox_stream in listed.stdout
    assert "WRONGTYPE" in listed.stdout
    shown = json.loads(dlq(settings, "show", entry_id).stdout)
    assert shown["payload"] == {"text": "Shelling near the border."}

    await redis.delete(settings.reports_stream)  # the fix
    async with running(build_ingest(settings)):
        replayed = dlq(settings, "replay", entry_id)
        assert replayed.returncode == 0, replayed.stderr
        assert f"{entry_id} -> {settings.inbox_stream}" in replayed.stdout
        reports = await wait_for(lambda: stream_entries(redis, settings.reports_stream))
    assert reports[0]["text"] == "Shelling near the border."
    assert dlq(settings, "list").stdout.strip() == "no dead letters"


async def test_replay_all_and_unknown_id(settings: Settings, redis: aioredis.Redis) -> None:
    """--all replays every dead letter; an unknown id is an error."""
    for n in range(3):
        letter = {
            "origin_stream": settings.inbox_stream,
            "entry_id": f"{n}-0",
            "group": "ingest",
            "consumer": "c",
            "deliveries": 1,
            "error": "x",
            "error_type": "X",
            "payload": {"text": f"report {n}"},
        }
        await redis.xadd(settings.dead_letter_stream, {"__data__": json.dumps(letter)})
    assert dlq(settings, "replay", "999-0").returncode == 1
    assert dlq(settings, "replay", "--all").stdout.count(" -> ") == 3
    assert [e["text"] for e in await stream_entries_raw(redis, settings.inbox_stream)] == [
        "report 0",
        "report 1",
        "report 2",
    ]


async def stream_entries_raw(redis: aioredis.Redis, stream: str) -> list[dict[str, str]]:
    return [dict(fields) for _, fields in await redis.xrange(stream)]
