"""The two baselines' stage programs, each run as its own process by the benchmark.

- ``relay``: the limit. Plain redis-py moving entries from one stream to the next with
  XREADGROUP COUNT, a pipelined XADD and XACK, doing no work.
- ``naive``: a first FastStream version of Flashpoint's three stages. One message per handler
  call and FastStream's default settings (its own message envelope, default ack policy and
  polling); each stage does the same pure work as the real service (normalise, classify,
  match the subscriptions) but none of the Redis-side duplicate checks, grouping or delivery.

``python -m bench.stages relay|naive STAGE --redis-url URL --input S [--output S] --group G``
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import redis

READ_COUNT = 500
BLOCK_MS = 100


def relay(redis_url: str, input_stream: str, output_stream: str | None, group: str) -> None:
    """Move entries from ``input_stream`` to ``output_stream`` until SIGTERM."""
    client = redis.Redis.from_url(redis_url)
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    while running:
        reply: Any = client.xreadgroup(
            group, "relay", {input_stream: ">"}, count=READ_COUNT, block=BLOCK_MS
        )
        if not reply:
            continue
        entries = reply[0][1]
        pipe = client.pipeline(transaction=False)
        if output_stream is not None:
            for _, fields in entries:
                pipe.xadd(output_stream, fields, maxlen=1_000_000, approximate=True)
        pipe.xack(input_stream, group, *[entry_id for entry_id, _ in entries])
        pipe.execute()
    client.close()


def naive(
    stage: str, redis_url: str, input_stream: str, output_stream: str | None, group: str
) -> None:
    """One naive FastStream stage until SIGTERM."""
    from faststream import FastStream
    from faststream.redis import RedisBroker, StreamSub

    from services.classifier.classify import Classifier
    from services.classifier.gazetteer import builtin_gazetteer
    from services.classifier.rules import load_rule_sets
    from services.ingest.normalize import to_report
    from services.notifier.subscriptions import Subscription, rejection
    from shared.messages import RawReport, Report, Signal, utc_now

    broker = RedisBroker(redis_url)
    subscriber = broker.subscriber(stream=StreamSub(input_stream, group=group, consumer="naive"))
    publisher = broker.publisher(stream=output_stream) if output_stream else None

    if stage == "ingest":

        @subscriber
        async def normalise(raw: RawReport) -> None:
            assert publisher is not None
            await publisher.publish(to_report(raw, fetched_at=utc_now()))

    elif stage == "classifier":
        classifier = Classifier(tuple(load_rule_sets(["builtin"])), builtin_gazetteer())

        @subscriber
        async def classify(report: Report) -> None:
            assert publisher is not None
            await publisher.publish(classifier.classify(report))

    else:
        watch = Subscription(name="bench", urls=("json://127.0.0.1:9/",))

        @subscriber
        async def decide(signal: Signal) -> None:
            rejection(watch, signal)

    asyncio.run(FastStream(broker).run())


def main() -> None:
    """Command line of one stage process."""
    parser = argparse.ArgumentParser(prog="python -m bench.stages")
    parser.add_argument("kind", choices=["relay", "naive"])
    parser.add_argument("stage", choices=["ingest", "classifier", "notifier"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output")
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    if args.kind == "relay":
        relay(args.redis_url, args.input, args.output, args.group)
    else:
        naive(args.stage, args.redis_url, args.input, args.output, args.group)


if __name__ == "__main__":
    main()
