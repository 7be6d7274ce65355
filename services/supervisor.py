"""``flashpoint up``: the whole pipeline on one machine, each service its own process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

from shared.embedded import EmbeddedRedis
from shared.proc import die_with_parent
from shared.settings import Settings, mask_url

SERVICES = ("ingest", "classifier", "notifier")
EMBEDDED_PORT = 6390
STOP_SERVICES_S = 6.0
CRASH_WINDOW_S = 60.0
MAX_CRASHES = 5
STOP_REDIS_S = 3.0


def demo_feed() -> Path:
    """The bundled demo feed of realistic reports."""
    return Path(str(resources.files("services.ingest") / "demo" / "reports.jsonl"))


def up(demo: bool) -> int:
    """Start Redis (embedded unless configured) and the three services; stop them on a signal."""
    settings = Settings()
    env = dict(os.environ)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    embedded: EmbeddedRedis | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if "FLASHPOINT_REDIS_URL" not in os.environ:
            data = settings.data_dir / ("demo-redis" if demo else "redis")
            embedded = EmbeddedRedis(data, port=EMBEDDED_PORT)
            if demo:
                embedded.wipe()
            env["FLASHPOINT_REDIS_URL"] = embedded.start()
            _write_url(settings.data_dir, embedded.url)
        if demo:
            env.setdefault("FLASHPOINT_JSONL_PATH", str(demo_feed()))
        _announce(settings, env["FLASHPOINT_REDIS_URL"], env.get("FLASHPOINT_JSONL_PATH"))
        for name in SERVICES:
            if not stop.is_set():
                children[name] = _start(name, env)
        return _supervise(children, stop, env)
    finally:
        _stop_all(children)
        if embedded is not None:
            embedded.stop(timeout_s=STOP_REDIS_S)
        _say("flashpoint stopped")


def _start(name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "run", name],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def _supervise(
    children: dict[str, subprocess.Popen[bytes]], stop: threading.Event, env: dict[str, str]
) -> int:
    """Restart a service that dies, unless it keeps dying; return when told to stop."""
    crashes: dict[str, list[float]] = {name: [] for name in children}
    while not stop.wait(0.2):
        for name, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            now = time.monotonic()
            crashes[name] = [t for t in crashes[name] if now - t < CRASH_WINDOW_S] + [now]
            if len(crashes[name]) > MAX_CRASHES:
                _say(f"service {name} died {len(crashes[name])} times in a minute; stopping")
                return code or 1
            _say(f"service {name} exited with code {code}; restarting it")
            children[name] = _start(name, env)
    return 0


def _stop_all(children: dict[str, subprocess.Popen[bytes]]) -> None:
    running = [c for c in children.values() if c.poll() is None]
    if running:
        _say("stopping services…")
    for child in running:
        child.terminate()
    deadline = time.monotonic() + STOP_SERVICES_S
    for child in running:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _write_url(data_dir: Path, url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "redis-url").write_text(url + "\n")


def _announce(settings: Settings, redis_url: str, feed: str | None) -> None:
    shown = mask_url(redis_url)
    _say(f"Redis: {shown}")
    if feed:
        _say(f"Replaying {feed}")
    _say(
        "Publish a report from anywhere: redis-cli -u "
        f"{shown} XADD {settings.inbox_stream} '*' title '...' text '...'"
    )
    _say("Ctrl-C stops everything.")


def _say(text: str) -> None:
    with contextlib.suppress(OSError):  # a closed terminal must not stop the clean-up
        print(f"[flashpoint] {text}", file=sys.stderr, flush=True)
