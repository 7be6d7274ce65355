"""Redis with a password and Redis over TLS (``rediss://``) both carry the pipeline."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from services.classifier.app import build as build_classifier
from services.ingest.app import build as build_ingest
from shared.embedded import EmbeddedRedis, free_port
from shared.logs import configure_logging
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for

PASSWORD = "pw-7f3c9e1a55d2"


async def report_to_signal(settings: Settings) -> None:
    """Ingest and classifier turn one inbox entry into a signal on ``settings``' Redis."""
    client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        async with running(build_ingest(settings)), running(build_classifier(settings)):
            await client.xadd(settings.inbox_stream, {"text": "Artillery shelling near Surin."})
            [signal] = await wait_for(lambda: stream_entries(client, settings.signals_stream))
        assert signal["label"] == "escalation"
    finally:
        await client.aclose()


async def test_password_in_the_url_works_and_is_never_logged(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False, password=PASSWORD) as server:
        settings = make_settings(redis_url=server.url, log_level="DEBUG")
        configure_logging(settings, "ingest")
        await report_to_signal(settings)
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    assert "report classified" in logs  # the logs were captured
    assert PASSWORD not in logs


async def test_a_wrong_password_is_refused_plainly(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with EmbeddedRedis(tmp_path / "redis", appendonly=False, password=PASSWORD) as server:
        settings = make_settings(redis_url=server.url.replace(PASSWORD, "wrong-password"))
        with pytest.raises(redis.AuthenticationError):
            async with running(build_ingest(settings)):
                pass


@pytest.fixture
def tls_redis_url(tmp_path: Path) -> Iterator[str]:
    """A TLS-only redis-server with a self-signed certificate for 127.0.0.1."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if server is None or openssl is None:
        pytest.skip("needs a TLS-capable redis-server and openssl on PATH")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process = subprocess.Popen(
        [
            *(server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"),
            *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    pytest.skip("this redis-server was built without TLS")
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


async def test_rediss_url_with_a_verified_certificate(
    make_settings: Callable[..., Settings], tls_redis_url: str
) -> None:
    await report_to_signal(make_settings(redis_url=tls_redis_url))
