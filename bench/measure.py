"""What the benchmark reads off Redis and the processes: completion, latency, memory."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis


@dataclass(frozen=True)
class Stage:
    """One stage of a pipeline: the stream it reads and the consumer group it reads with."""

    name: str
    stream: str
    group: str


def ms_of(entry_id: bytes | str) -> int:
    """The millisecond timestamp in a stream entry id."""
    return _id_key(entry_id)[0]


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def stage_state(client: redis.Redis, stage: Stage) -> tuple[bool, float]:
    """Whether the stage has handled everything in its stream so far, and roughly how much.

    Done means nothing pending and the group's last delivered id is the stream's last id. The
    fraction is by entry time, which is all Redis 6.2 offers cheaply (it has no group lag).
    """
    try:
        stream: Any = client.xinfo_stream(stage.stream)
        groups: Any = client.xinfo_groups(stage.stream)
    except redis.ResponseError:
        return False, 0.0
    group = next((g for g in groups if _text(g["name"]) == stage.group), None)
    if group is None or stream["length"] == 0:
        return False, 0.0
    last, delivered = stream["last-generated-id"], group["last-delivered-id"]
    done = group["pending"] == 0 and _id_key(delivered) >= _id_key(last)
    first = stream["first-entry"][0] if stream.get("first-entry") else last
    span = ms_of(last) - ms_of(first)
    fraction = 1.0 if done else max(0.0, ms_of(delivered) - ms_of(first)) / max(span, 1)
    return done, min(fraction, 1.0)


def wait_until_done(
    client: redis.Redis,
    stages: Sequence[Stage],
    *,
    timeout_s: float,
    on_progress: Callable[[list[float]], None] | None = None,
    poll_s: float = 0.01,
) -> float:
    """Wait until every stage is done, checked in pipeline order; return when it happened.

    A stage acknowledges an entry only after publishing what it produced, so once a stage is
    seen done, everything it will ever write to the next stream is already there.
    """
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    while True:
        now = time.perf_counter()
        states = [stage_state(client, stage) for stage in stages]
        if all(done for done, _ in states):
            return now
        if time.monotonic() > deadline:
            unfinished = [s.name for s, (done, _) in zip(stages, states, strict=True) if not done]
            msg = f"not done within {timeout_s:.0f} s: {', '.join(unfinished)}"
            raise TimeoutError(msg)
        if on_progress is not None and now - last_report > 0.5:
            on_progress([fraction for _, fraction in states])
            last_report = now
        time.sleep(poll_s)


def first_delivery(client: redis.Redis, stage: Stage, *, timeout_s: float) -> float:
    """When the stage's group first took an entry (polled), for timing a stage alone."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            groups: Any = client.xinfo_groups(stage.stream)
        except redis.ResponseError:
            groups = []
        for group in groups:
            if _text(group["name"]) == stage.group and _id_key(group["last-delivered-id"]) > (0, 0):
                return time.perf_counter()
        time.sleep(0.002)
    msg = f"{stage.name} took nothing within {timeout_s:.0f} s"
    raise TimeoutError(msg)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and max (nearest rank) of ``values``."""
    if not values:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]

    return {"p50": rank(50), "p95": rank(95), "p99": rank(99), "max": ordered[-1]}


def memory_kib(pid: int) -> dict[str, int]:
    """Resident memory of a process now and at its peak, in KiB (Linux /proc; else empty)."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return {}
    wanted = {"VmRSS": "rss", "VmHWM": "peak_rss"}
    found: dict[str, int] = {}
    for line in status.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            found[wanted[key]] = int(value.split()[0])
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) a process has used so far (Linux /proc; else None)."""
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")
