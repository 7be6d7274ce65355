"""``flashpoint sources check|list``: validate the sources file and see how each source is doing."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from services.cli_support import with_redis
from services.ingest.sources.base import SourceError, configured_sources, read_sources_file
from services.ingest.sources.runner import stats_key
from shared.settings import Settings
from shared.streams import as_text


def add_commands(sub: Any) -> None:
    """Register the ``sources`` command group on an argparse subparsers object."""
    group = sub.add_parser("sources", help="Check and list the sources ingest polls.")
    commands = group.add_subparsers(dest="action", required=True)
    check = commands.add_parser("check", help="Validate a sources file without running it.")
    check.add_argument("file", nargs="?", help="default: FLASHPOINT_SOURCES_FILE")
    check.set_defaults(handler=_check)
    listing = commands.add_parser("list", help="Each source: last poll, counts, last error.")
    listing.set_defaults(handler=with_redis(_list))


def _check(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        sources = read_sources_file(Path(args.file)) if args.file else configured_sources(settings)
    except SourceError as error:
        print(f"invalid: {error}")
        return 2
    for source in sources:
        print(f"{source.entry.name}\t{source.entry.type}\tevery {source.entry.interval_s:g}s")
    print(f"{len(sources)} sources, all valid")
    return 0


async def _list(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
    try:
        sources = configured_sources(settings)
    except SourceError as error:
        print(f"invalid: {error}")
        return 2
    print("source\ttype\tlast poll\tpublished\tduplicates\tfailures\tlast error")
    for source in sources:
        raw = await client.hgetall(stats_key(settings, source.entry.name))
        stats = {as_text(k): as_text(v) for k, v in raw.items()}
        last = stats.get("last_poll")
        when = (
            datetime.fromtimestamp(float(last), UTC).strftime("%Y-%m-%d %H:%M:%S")
            if last
            else "never"
        )
        print(
            f"{source.entry.name}\t{source.entry.type}\t{when}\t{stats.get('published', 0)}\t"
            f"{stats.get('duplicates', 0)}\t{stats.get('failures', 0)}\t"
            f"{stats.get('last_error') or '-'}"
        )
    return 0
