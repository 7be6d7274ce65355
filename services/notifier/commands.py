"""``flashpoint subscriptions …``: manage who gets which alerts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from datetime import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from services.cli_support import with_redis
from services.notifier.channels import Channel
from services.notifier.formats import Rendered
from services.notifier.store import SubscriptionFileError, SubscriptionStore
from services.notifier.subscriptions import Subscription
from shared.settings import Settings
from shared.streams import describe_error

SAMPLE = Rendered(
    title="🔔 TEST · Flashpoint subscription check",
    body="This is a test alert from Flashpoint. If you can read it, this channel works.",
    body_format="text",
)


def add_commands(sub: Any) -> None:
    """Register the ``subscriptions`` command group on an argparse subparsers object."""
    group = sub.add_parser("subscriptions", help="Manage subscriptions (stored in Redis).")
    commands = group.add_subparsers(dest="action", required=True)

    add = commands.add_parser("add", help="Add or replace a subscription.")
    add.add_argument("name")
    add.add_argument("--url", action="append", required=True, help="apprise URL (repeatable)")
    add.add_argument("--kinds", help="escalation,ceasefire (default both)")
    add.add_argument("--min-severity", help="info, low, moderate, high, critical or 1-5")
    add.add_argument("--min-confidence", type=float)
    add.add_argument("--countries", help="ISO alpha-2 codes, e.g. TH,KH")
    add.add_argument("--places", help="place or province names, comma-separated")
    add.add_argument("--keywords", help="words, comma-separated; any must appear")
    add.add_argument("--timezone", default="UTC", help="IANA name, e.g. Asia/Bangkok")
    add.add_argument("--quiet", help="quiet hours HH:MM-HH:MM in the time zone")
    add.add_argument("--max-per-hour", type=int)
    add.add_argument("--group-wait", type=int, help="seconds")
    add.add_argument("--group-interval", type=int, help="seconds")
    add.add_argument("--repeat-interval", type=int, help="seconds")
    add.add_argument("--format", choices=["auto", "text"], help="message format (default auto)")
    add.set_defaults(handler=_run(_add))

    commands.add_parser("list", help="List subscriptions (URLs masked).").set_defaults(
        handler=_run(_list)
    )
    for action, help_, handler in (
        ("show", "Show one subscription (URLs masked).", _show),
        ("remove", "Remove a subscription.", _remove),
        ("test", "Send a test alert to each channel and report each result.", _test),
    ):
        command = commands.add_parser(action, help=help_)
        command.add_argument("name")
        command.set_defaults(handler=_run(handler))
    load = commands.add_parser("load", help="Add or update the subscriptions of a YAML file.")
    load.add_argument("file")
    load.set_defaults(handler=_run(_load))


def subscription_from(args: argparse.Namespace) -> Subscription:
    """The subscription the ``add`` arguments describe (validated)."""
    filters: dict[str, Any] = {}
    if args.kinds:
        filters["kinds"] = _split(args.kinds)
    if args.min_severity:
        filters["min_severity"] = args.min_severity
    if args.min_confidence is not None:
        filters["min_confidence"] = args.min_confidence
    for field in ("countries", "places", "keywords"):
        if getattr(args, field):
            filters[field] = _split(getattr(args, field))
    delivery: dict[str, Any] = {}
    if args.quiet:
        start, _, end = args.quiet.partition("-")
        delivery["quiet_hours"] = {"start": time.fromisoformat(start), "end": end}
    for arg, field in (
        ("max_per_hour", "max_per_hour"),
        ("group_wait", "group_wait_s"),
        ("group_interval", "group_interval_s"),
        ("repeat_interval", "repeat_interval_s"),
        ("format", "message_format"),
    ):
        if getattr(args, arg) is not None:
            delivery[field] = getattr(args, arg)
    return Subscription.model_validate(
        {
            "name": args.name,
            "urls": args.url,
            "timezone": args.timezone,
            "filters": filters,
            "delivery": delivery,
        }
    )


Handler = Callable[[argparse.Namespace, SubscriptionStore], Awaitable[int]]


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    async def command(args: argparse.Namespace, client: aioredis.Redis, settings: Settings) -> int:
        return await handler(args, SubscriptionStore(client, settings))

    run_with_redis = with_redis(command)

    def run(args: argparse.Namespace) -> int:
        try:
            return run_with_redis(args)
        except ValidationError as error:
            print(f"refused: {describe_error(error).removeprefix('invalid message: ')}")
            return 2
        except (SubscriptionFileError, ValueError) as error:
            print(f"refused: {error}")
            return 2

    return run


async def _add(args: argparse.Namespace, store: SubscriptionStore) -> int:
    subscription = subscription_from(args)
    print(f"{subscription.name}: {await store.put(subscription)}")
    return 0


async def _list(args: argparse.Namespace, store: SubscriptionStore) -> int:
    subscriptions = await store.all()
    if not subscriptions:
        print("no subscriptions")
    for subscription in subscriptions:
        shown = subscription.masked()
        print(f"{subscription.name}\t{', '.join(shown['urls'])}")  # type: ignore[arg-type]
    return 0


async def _show(args: argparse.Namespace, store: SubscriptionStore) -> int:
    subscription = await store.get(args.name)
    if subscription is None:
        print(f"no subscription called {args.name!r}")
        return 1
    print(json.dumps(subscription.masked(), indent=2, default=str))
    return 0


async def _remove(args: argparse.Namespace, store: SubscriptionStore) -> int:
    removed = await store.remove(args.name)
    print(f"{args.name}: {'removed' if removed else 'no such subscription'}")
    return 0 if removed else 1


async def _test(args: argparse.Namespace, store: SubscriptionStore) -> int:
    subscription = await store.get(args.name)
    if subscription is None:
        print(f"no subscription called {args.name!r}")
        return 1
    failed = 0
    for url in subscription.urls:
        channel = Channel(url)
        result = await channel.send(SAMPLE.title, SAMPLE.body, timeout_s=15)
        print(f"{channel.masked}\t{'ok' if result.ok else 'failed: ' + (result.error or '')}")
        failed += not result.ok
    return 1 if failed else 0


async def _load(args: argparse.Namespace, store: SubscriptionStore) -> int:
    for name, change in (await store.load_file(Path(args.file))).items():
        print(f"{name}: {change}")
    return 0


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
