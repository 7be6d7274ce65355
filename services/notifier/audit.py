"""``flashpoint alerts list|show``: what the notifier decided, read from the deliveries stream."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any, cast

import redis.asyncio as aioredis

from services.cli_support import with_redis
from shared.messages import DeliveryRecord, Signal
from shared.settings import Settings

SCAN = 10_000


def add_commands(sub: Any) -> None:
    """Register the ``alerts`` command group on an argparse subparsers object."""
    group = sub.add_parser("alerts", help="Recent alerts and their per-channel outcomes.")
    commands = group.add_subparsers(dest="action", required=True)
    listing = commands.add_parser("list", help="Recent alerts, newest first.")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(handler=with_redis(_list))
    show = commands.add_parser("show", help="One alert: its report and every decision.")
    show.add_argument("id", help="a report id (r-…) or a group id (group-…)")
    show.set_defaults(handler=with_redis(_show))


async def recent_records(client: aioredis.Redis, settings: Settings) -> list[DeliveryRecord]:
    """The newest delivery records, newest first."""
    entries = await _newest(client, settings.deliveries_stream)
    return [DeliveryRecord.model_validate_json(fields[b"__data__"]) for _, fields in entries]


async def _newest(client: aioredis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    entries = await client.xrevrange(stream, count=SCAN)
    return cast("list[tuple[bytes, dict[bytes, bytes]]]", entries or [])


def summarise(records: list[DeliveryRecord], limit: int) -> list[dict[str, Any]]:
    """One line per alert id: when, label, and how many decisions of each outcome."""
    by_id: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = by_id.setdefault(
            record.signal_id,
            {
                "id": record.signal_id,
                "label": record.label,
                "at": record.at.isoformat(),
                "outcomes": defaultdict(int),
            },
        )
        entry["outcomes"][record.outcome] += 1
    return list(by_id.values())[:limit]


async def _list(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
    alerts = summarise(await recent_records(client, settings), args.limit)
    if not alerts:
        print("no alerts yet")
    for alert in alerts:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(alert["outcomes"].items()))
        print(f"{alert['at']}\t{alert['id']}\t{alert['label']}\t{outcomes}")
    return 0


async def _show(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
    records = [r for r in await recent_records(client, settings) if r.signal_id == args.id]
    signal = await _find_signal(client, settings, args.id)
    if not records and signal is None:
        print(f"no alert {args.id!r} among the last {SCAN} decisions")
        return 1
    if signal is not None:
        report = signal.report
        print(
            f"{signal.label} · {signal.severity.name.lower()} · {report.title or report.text[:80]}"
        )
        print(
            f"source {report.source} · {report.url or 'no url'} · published {report.published_at}"
        )
    for record in reversed(records):
        detail = record.error or record.reason or ""
        print(
            f"{record.at.isoformat()}\t{record.subscription}\t{record.channel or '-'}\t"
            f"{record.outcome}\t{detail}"
        )
    return 0


async def _find_signal(client: aioredis.Redis, settings: Settings, signal_id: str) -> Signal | None:
    for _, fields in await _newest(client, settings.signals_stream):
        data = json.loads(fields[b"__data__"])
        if data.get("report", {}).get("id") == signal_id:
            return Signal.model_validate(data)
    return None
