"""The notifier on a real Redis with real HTTP channels: retries, dead letters, secrets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.notifier.app import build as build_notifier
from services.notifier.channels import Channel
from shared.logs import configure_logging
from shared.messages import Signal
from shared.settings import Settings
from tests.conftest import HttpSink, running, stream_entries, wait_for
from tests.factories import make_report, make_signal

SECRET = "pa55-w0rd-never-logged"


def escalation(report_id: str = "r-test1") -> Signal:
    return make_signal(make_report(id=report_id))


async def publish(redis: aioredis.Redis, settings: Settings, signal: Signal) -> None:
    await redis.xadd(settings.signals_stream, {"__data__": signal.model_dump_json()})


class TestFailingChannel:
    async def test_failing_channel_is_retried_then_dead_lettered_without_blocking_others(
        self,
        make_settings: Callable[..., Settings],
        redis: aioredis.Redis,
        http_sink: HttpSink,
        second_sink: HttpSink,
    ) -> None:
        """A channel answering 500 is retried and dead-lettered; the healthy one gets one alert."""
        http_sink.status = 500
        settings = make_settings(
            notify_urls=[
                f"json://alerts:{SECRET}@127.0.0.1:{http_sink.port}/broken",
                f"json://127.0.0.1:{second_sink.port}/healthy",
            ]
        )
        async with running(build_notifier(settings)):
            await publish(redis, settings, escalation())
            letters = await wait_for(
                lambda: stream_entries(redis, settings.dead_letter_stream), within=20
            )
        attempts = settings.max_deliveries * settings.notify_attempts
        assert len(http_sink.requests) == attempts
        assert len(second_sink.requests) == 1
        letter = letters[0]
        assert letter["deliveries"] == settings.max_deliveries
        assert letter["report_id"] == "r-test1"
        assert "delivery failed on default json://alerts:" in letter["error"]
        assert SECRET not in json.dumps(letter)
        outcomes = [r["outcome"] for r in await stream_entries(redis, settings.deliveries_stream)]
        assert outcomes.count("sent") == 1
        assert outcomes.count("failed") == settings.max_deliveries
        assert outcomes.count("duplicate") == settings.max_deliveries - 1

    async def test_channel_that_recovers_gets_the_alert_once(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """After a failed delivery the claimer retries, and the recovered channel gets it."""
        http_sink.status = 503
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        async with running(build_notifier(settings)):
            await publish(redis, settings, escalation())
            await wait_for(lambda: len(http_sink.requests) >= settings.notify_attempts)
            http_sink.status = 200
            await wait_for(lambda: _sent(redis, settings), within=10)
        assert await redis.xlen(settings.dead_letter_stream) == 0
        ok_requests = len(http_sink.requests) - settings.notify_attempts
        assert ok_requests == 1

    async def test_redelivered_signal_is_not_sent_twice(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """The same signal arriving twice (an upstream retry) reaches the channel once."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        async with running(build_notifier(settings)):
            await publish(redis, settings, escalation())
            await publish(redis, settings, escalation())
            records = await wait_for(
                lambda: _when(stream_entries(redis, settings.deliveries_stream), 2)
            )
        assert len(http_sink.requests) == 1
        assert sorted(r["outcome"] for r in records) == ["duplicate", "sent"]


class TestLease:
    async def test_signal_leased_by_another_notifier_is_not_sent_meanwhile(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """While another notifier holds the lease, nothing is sent; afterwards, exactly once."""
        settings = make_settings(
            notify_urls=[f"json://127.0.0.1:{http_sink.port}/"], max_deliveries=20
        )
        signal = escalation()
        async with running(build_notifier(settings)) as service:
            channel_digest = Channel(settings.notify_urls[0]).digest
            lease = settings.key("sent", signal.id, "default", channel_digest)
            await redis.set(lease, "sending", px=60_000)  # another notifier, mid-delivery
            await publish(redis, settings, signal)
            await wait_for(lambda: _pending(redis, settings, service.guard.group))
            await asyncio.sleep(settings.claim_idle_ms / 1000 * 2)
            assert http_sink.requests == []
            await redis.delete(lease)  # that notifier failed and let go
            await wait_for(lambda: http_sink.requests, within=10)
            await wait_for(lambda: _sent(redis, settings))
        assert len(http_sink.requests) == 1


class TestLogs:
    async def test_lines_carry_report_id_and_never_a_secret(
        self,
        make_settings: Callable[..., Settings],
        redis: aioredis.Redis,
        http_sink: HttpSink,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Every line about a signal names its report; channel secrets appear only masked."""
        http_sink.status = 500
        settings = make_settings(
            notify_urls=[f"json://alerts:{SECRET}@127.0.0.1:{http_sink.port}/x"],
            max_deliveries=1,
        )
        configure_logging(settings, "notifier")
        async with running(build_notifier(settings)):
            await publish(redis, settings, escalation("r-logged"))
            await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
        lines = [
            json.loads(line)
            for line in capsys.readouterr().err.splitlines()
            if line.startswith("{")
        ]
        about_signal = [
            line for line in lines if line["event"] in {"channel send failed", "dead-lettered"}
        ]
        assert about_signal
        assert all(line.get("report_id") == "r-logged" for line in about_signal)
        assert all(line.get("service") == "notifier" for line in lines)
        assert SECRET not in json.dumps(lines)
        assert any("json://alerts:" in json.dumps(line) for line in lines)


async def _pending(redis: aioredis.Redis, settings: Settings, group: str) -> bool:
    return bool((await redis.xpending(settings.signals_stream, group))["pending"])


async def _sent(redis: aioredis.Redis, settings: Settings) -> bool:
    records = await stream_entries(redis, settings.deliveries_stream)
    return any(r["outcome"] == "sent" for r in records)


async def _when(entries: Any, n: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await entries
    return found if len(found) >= n else None


class TestStatusCodes:
    async def test_rate_limited_channel_waits_before_retrying(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """After a 429 the next try waits at least the rate-limit pause, then succeeds."""
        http_sink.statuses = [429]
        settings = make_settings(
            notify_urls=[f"json://127.0.0.1:{http_sink.port}/"], rate_limit_wait_s=0.6
        )
        async with running(build_notifier(settings)):
            await publish(redis, settings, escalation())
            await wait_for(lambda: _sent(redis, settings), within=10)
        first, second = http_sink.times[:2]
        assert second - first >= 0.6
        assert len(http_sink.requests) == 2

    async def test_refused_channel_is_dead_lettered_at_once(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """A 404 is not retried: one try, then a dead letter saying it was refused for good."""
        http_sink.status = 404
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        async with running(build_notifier(settings)):
            await publish(redis, settings, escalation())
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
        assert len(http_sink.requests) == 1
        assert letters[0]["deliveries"] == 1
        assert letters[0]["error_type"] == "DeliveryRefused"
        assert "refused for good" in letters[0]["error"]


class TestInterruptedSend:
    """An alert another notifier began sending and never confirmed (it died mid-send)."""

    @pytest.mark.parametrize(("policy", "sends"), [("skip", 0), ("resend", 1)])
    async def test_policy_decides_whether_it_goes_again(
        self,
        make_settings: Callable[..., Settings],
        redis: aioredis.Redis,
        http_sink: HttpSink,
        policy: str,
        sends: int,
    ) -> None:
        url = f"json://127.0.0.1:{http_sink.port}/"
        settings = make_settings(notify_urls=[url], interrupted_send=policy)
        signal = escalation("r-interrupted")
        started = settings.key("sent", signal.id, "default", Channel(url).digest) + ":started"
        await redis.set(started, 1)  # what a notifier killed mid-send leaves behind
        async with running(build_notifier(settings)):
            await publish(redis, settings, signal)
            [record] = await wait_for(lambda: stream_entries(redis, settings.deliveries_stream))
            await asyncio.sleep(0.3)
        assert len(http_sink.requests) == sends
        assert record["outcome"] == {"skip": "uncertain", "resend": "sent"}[policy]
