"""The ``flashpoint`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from faststream import FastStream

from shared.settings import ServiceName, Settings

BUILDERS: dict[str, str] = {
    "ingest": "services.ingest.app",
    "classifier": "services.classifier.app",
    "notifier": "services.notifier.app",
}


RETRY_FIRST_S = 0.5
RETRY_LONGEST_S = 30.0
"""How long ``flashpoint run`` waits before starting again when Redis is unreachable."""


def build_app(name: ServiceName, settings: Settings) -> FastStream:
    """The FastStream app of one service."""
    import importlib

    module = importlib.import_module(BUILDERS[name])
    app, _ = module.build(settings)
    return app  # type: ignore[no-any-return]


def cmd_run(args: argparse.Namespace) -> int:
    """Run one service until SIGINT or SIGTERM, surviving the loss of its consumer group and
    waiting for Redis when it is unreachable (at start, or if the service stops over it)."""
    from services.health import group_lost
    from shared.logs import configure_logging, get_logger

    settings = Settings()
    configure_logging(settings, args.service)
    log = get_logger("flashpoint.run")
    retry_in_s = RETRY_FIRST_S
    while True:
        try:
            app = build_app(args.service, settings)
        except ValueError as error:  # a bad source, rule set or channel: say which, then stop
            log.error("cannot start", service=args.service, error=str(error))
            print(f"flashpoint {args.service}: cannot start: {error}", file=sys.stderr)
            return 2
        try:
            asyncio.run(app.run())
            lost = asyncio.run(group_lost(settings, args.service))
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.error("Redis unreachable; starting again", error=str(error), retry_in_s=retry_in_s)
            time.sleep(retry_in_s)
            retry_in_s = min(retry_in_s * 2, RETRY_LONGEST_S)
            continue
        retry_in_s = RETRY_FIRST_S
        if lost is None:
            return 0
        # FastStream stops a subscriber whose group vanished (NOGROUP) and exits the app.
        log.error(
            "consumer group lost: Redis restarted without persistence or was flushed; "
            "entries and pending entries from before are gone. Recreating it and carrying on "
            "with new entries",
            problem=lost,
        )


def cmd_up(args: argparse.Namespace) -> int:
    """Run Redis and all three services."""
    from services.supervisor import up

    return up(demo=args.demo)


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when Redis answers and the service's consumer group exists."""
    from services.health import check

    problems = asyncio.run(check(Settings(), args.service))
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{args.service}: ok")
    return 1 if problems else 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print every stream and group; exit non-zero when something needs attention."""
    from services.status import run

    return run(args.max_lag)


def cmd_docs(args: argparse.Namespace) -> int:
    """Write the AsyncAPI document of every stream contract."""
    from services.contract import asyncapi_document

    text = asyncapi_document()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Measure the classifier on a labelled TSV file."""
    from services.classifier.classify import Classifier
    from services.classifier.evaluate import LABELS, evaluate, read_examples
    from services.classifier.gazetteer import builtin_gazetteer
    from services.classifier.rules import load_rule_sets

    classifier = Classifier(tuple(load_rule_sets(Settings().rules)), builtin_gazetteer())
    result = evaluate(read_examples(Path(args.file)), classifier)
    if args.json:
        print(
            json.dumps(
                {
                    "n": result.n,
                    "macro_f1": result.macro_f1(),
                    "per_class": result.per_class(),
                    "confusion": {g: {p: result.confusion[(g, p)] for p in LABELS} for g in LABELS},
                    "reports_per_second": result.reports_per_second(),
                }
            )
        )
        return 0
    print(f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for label, row in result.per_class().items():
        print(
            f"{label:<12}{row['precision']:>10.3f}{row['recall']:>10.3f}"
            f"{row['f1']:>10.3f}{row['support']:>10}"
        )
    print(f"\nmacro-F1 {result.macro_f1():.3f} over {result.n} reports")
    print("\nconfusion (rows gold, columns predicted)")
    print(" " * 12 + "".join(f"{p:>12}" for p in LABELS))
    for gold in LABELS:
        print(f"{gold:<12}" + "".join(f"{result.confusion[(gold, p)]:>12}" for p in LABELS))
    print(f"\n{result.reports_per_second():.0f} reports per second")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    top = argparse.ArgumentParser(prog="flashpoint", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_, description=help_)
        command.set_defaults(handler=handler)
        return command

    run = add("run", cmd_run, "Run one service (ingest, classifier or notifier).")
    run.add_argument("service", choices=sorted(BUILDERS))
    up = add(
        "up", cmd_up, "Run the whole pipeline; embedded Redis unless FLASHPOINT_REDIS_URL is set."
    )
    up.add_argument(
        "--demo", action="store_true", help="replay the bundled demo feed on a fresh Redis"
    )
    health = add("health", cmd_health, "Check that a service can work (for healthchecks).")
    health.add_argument("service", choices=sorted(BUILDERS))
    status = add(
        "status",
        cmd_status,
        "Streams, groups, lag, pending, dead letters; non-zero exit on trouble.",
    )
    status.add_argument("--max-lag", type=int, default=1000, help="lag that needs attention")
    from bench import command as bench_command
    from services import dlq
    from services.ingest import commands as ingest_commands
    from services.notifier import audit, commands

    commands.add_commands(sub)
    audit.add_commands(sub)
    dlq.add_commands(sub)
    ingest_commands.add_commands(sub)
    bench_command.add_commands(sub)
    docs = add("docs", cmd_docs, "Write the AsyncAPI document of the stream contracts.")
    docs.add_argument("--out", default="-", help="file to write, or - for standard output")
    ev = add("eval", cmd_eval, "Measure the classifier on a TSV file with text and label columns.")
    ev.add_argument("file")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flashpoint`` program."""
    args = parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
