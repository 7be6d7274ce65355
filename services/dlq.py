"""``flashpoint dlq list|show|replay``: inspect dead letters and send them back once fixed."""

from __future__ import annotations

import argparse
import json
from typing import Any, cast

import redis.asyncio as aioredis

from services.cli_support import with_redis
from shared.messages import DeadLetter
from shared.settings import Settings

Entry = tuple[str, DeadLetter]


def add_commands(sub: Any) -> None:
    """Register the ``dlq`` command group on an argparse subparsers object."""
    group = sub.add_parser("dlq", help="Inspect and replay dead letters.")
    commands = group.add_subparsers(dest="action", required=True)
    listing = commands.add_parser("list", help="Dead letters, oldest first.")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(handler=with_redis(_list))
    show = commands.add_parser("show", help="One dead letter in full.")
    show.add_argument("id")
    show.set_defaults(handler=with_redis(_show))
    replay = commands.add_parser("replay", help="Send dead letters back where they came from.")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?")
    target.add_argument("--all", action="store_true")
    replay.set_defaults(handler=with_redis(_replay))


async def dead_letters(client: aioredis.Redis, settings: Settings, count: int) -> list[Entry]:
    """Up to ``count`` dead letters, oldest first, with their stream ids."""
    raw = await client.xrange(settings.dead_letter_stream, count=count)
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", raw or [])
    return [
        (entry_id.decode(), DeadLetter.model_validate_json(fields[b"__data__"]))
        for entry_id, fields in entries
    ]


def replay_target(letter: DeadLetter, settings: Settings) -> str:
    """Where a dead letter goes back to: its stream, or the inbox for a source's bad line."""
    if letter.origin_stream.startswith("source:"):
        return settings.inbox_stream
    return letter.origin_stream


def replay_fields(letter: DeadLetter) -> dict[str, str]:
    """The fields to publish again: the original entry, or a source line as its __data__."""
    if letter.origin_stream.startswith("source:"):
        raw = (
            letter.payload.get("line")
            or letter.payload.get("item")
            or letter.payload.get("document")
            or ""
        )
        return {"__data__": raw}
    return dict(letter.payload)


async def replay(client: aioredis.Redis, settings: Settings, entry: Entry) -> str:
    """Publish one dead letter again and remove it; return the new entry's id."""
    entry_id, letter = entry
    new_id = await client.xadd(
        replay_target(letter, settings),
        replay_fields(letter),  # type: ignore[arg-type]
        maxlen=settings.stream_maxlen,
        approximate=True,
    )
    await client.xdel(settings.dead_letter_stream, entry_id)
    return new_id.decode() if isinstance(new_id, bytes) else str(new_id)


async def _list(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
    entries = await dead_letters(client, settings, args.limit)
    if not entries:
        print("no dead letters")
    for entry_id, letter in entries:
        print(
            f"{entry_id}\t{letter.dead_at:%Y-%m-%d %H:%M:%S}\t{letter.origin_stream}\t"
            f"{letter.report_id or '-'}\t{letter.deliveries}\t{letter.error[:120]}"
        )
    return 0


async def _show(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
    found = cast(
        "list[tuple[bytes, dict[bytes, bytes]]]",
        await client.xrange(settings.dead_letter_stream, min=args.id, max=args.id) or [],
    )
    if not found:
        print(f"no dead letter {args.id}")
        return 1
    letter = DeadLetter.model_validate_json(found[0][1][b"__data__"])
    print(json.dumps(letter.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


async def _replay(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
    if args.all:
        entries = await dead_letters(client, settings, 100_000)
    else:
        entries = [e for e in await dead_letters(client, settings, 100_000) if e[0] == args.id]
        if not entries:
            print(f"no dead letter {args.id}")
            return 1
    for entry in entries:
        new_id = await replay(client, settings, entry)
        print(f"{entry[0]} -> {replay_target(entry[1], settings)} {new_id}")
    return 0
