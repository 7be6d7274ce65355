"""``flashpoint bench``: its command-line options."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.report import plot, table
from bench.run import Options, run_all, say


def add_commands(sub: Any) -> None:
    """Register ``bench`` on an argparse subparsers object."""
    defaults = Options(work_dir=Path())
    command = sub.add_parser(
        "bench",
        help="Measure the pipeline against a raw relay and a naive FastStream pipeline.",
        description=__doc__,
    )
    command.add_argument("--reports", type=int, default=defaults.reports, help="reports per run")
    command.add_argument(
        "--naive-reports",
        type=int,
        default=defaults.naive_reports,
        help="reports for the (slow) naive pipeline",
    )
    command.add_argument(
        "--rate", type=int, default=defaults.rate, help="offered load for latency, reports/s"
    )
    command.add_argument(
        "--latency-seconds", type=float, default=defaults.latency_seconds, help="latency run"
    )
    command.add_argument("--redis-url", help="use this Redis instead of an embedded one")
    command.add_argument("--no-baselines", action="store_true", help="skip relay and naive")
    command.add_argument(
        "--log-level", default=defaults.log_level, help="services' log level during the run"
    )
    command.add_argument("--json", type=Path, help="write every result to this file")
    command.add_argument("--plot", type=Path, help="save latency over time to this PNG")
    command.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, write what was asked for."""
    options = Options(
        reports=args.reports,
        naive_reports=min(args.naive_reports, args.reports),
        rate=args.rate,
        latency_seconds=args.latency_seconds,
        redis_url=args.redis_url,
        baselines=not args.no_baselines,
        log_level=args.log_level,
    )
    results = run_all(options)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        say(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        say(f"wrote {args.plot}")
    return 0
