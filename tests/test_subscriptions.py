"""Subscriptions: validation, filters, quiet hours, storage and the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from services.notifier.app import build as build_notifier
from services.notifier.route import quiet_reason
from services.notifier.store import (
    SubscriptionFileError,
    SubscriptionStore,
    read_subscriptions_file,
)
from services.notifier.subscriptions import Subscription, rejection
from shared.messages import Place, Severity
from shared.settings import Settings
from tests.conftest import HttpSink, running, stream_entries, wait_for
from tests.factories import make_report, make_signal

SECRET = "hunter2-very-secret"


IMMEDIATE = {"group_wait_s": 0, "group_interval_s": 0}


def subscription(**overrides: Any) -> Subscription:
    values: dict[str, Any] = {"name": "desk", "urls": ["console://"], "delivery": IMMEDIATE}
    values.update(overrides)
    return Subscription.model_validate(values)


class TestValidation:
    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"urls": ["nope://x"]}, "no apprise plugin accepts a URL with scheme 'nope'"),
            ({"filters": {"countries": ["XX"]}}, "unknown country code 'XX'"),
            ({"timezone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
            ({"filters": {"min_severity": "apocalyptic"}}, "unknown severity 'apocalyptic'"),
            ({"name": "Has Spaces"}, "String should match pattern"),
        ],
    )
    def test_bad_input_is_refused_saying_what_is_wrong(
        self, values: dict[str, Any], message: str
    ) -> None:
        """An unusable URL, country, time zone or severity is refused with the reason."""
        with pytest.raises(ValidationError, match=message):
            subscription(**values)

    def test_masked_view_hides_secrets(self) -> None:
        """Listing a subscription never shows a channel's password."""
        shown = subscription(urls=[f"json://ops:{SECRET}@127.0.0.1:9/hook"]).masked()
        assert SECRET not in json.dumps(shown)


class TestFilters:
    def test_everything_passes_by_default(self) -> None:
        """A subscription without filters takes every escalation and ceasefire signal."""
        assert rejection(subscription(), make_signal()) is None

    def test_none_is_never_delivered(self) -> None:
        """A signal labelled none goes to nobody."""
        assert rejection(subscription(), make_signal(label="none")) is not None

    @pytest.mark.parametrize(
        ("filters", "reason"),
        [
            ({"kinds": ["ceasefire"]}, "kind escalation not subscribed"),
            ({"min_severity": "critical"}, "severity high below critical"),
            ({"min_confidence": 0.95}, "confidence 0.88 below 0.95"),
            ({"countries": ["UA"]}, "none of the subscribed countries"),
            ({"places": ["Pailin"]}, "none of the subscribed places"),
            ({"keywords": ["drone"]}, "none of the subscribed keywords"),
        ],
    )
    def test_each_filter_says_why(self, filters: dict[str, Any], reason: str) -> None:
        """Each filter rejects with a reason a person can read."""
        signal = make_signal(
            countries=("KH", "TH"), places=(Place(name="Sa Kaeo", country="TH", admin_level=1),)
        )
        assert rejection(subscription(filters=filters), signal) == reason

    def test_matching_filters_pass(self) -> None:
        """Countries, places (any case) and keywords that match let the signal through."""
        signal = make_signal(
            countries=("KH", "TH"), places=(Place(name="Sa Kaeo", country="TH", admin_level=1),)
        )
        wanted = {"countries": ["th"], "places": ["sa kaeo"], "keywords": ["ARTILLERY"]}
        assert rejection(subscription(filters=wanted), signal) is None


class TestQuietHours:
    def test_quiet_hours_in_the_subscribers_time_zone(self) -> None:
        """22:00-07:00 in Bangkok holds back a high alert at 23:30 Bangkok (16:30 UTC)."""
        quiet = subscription(
            timezone="Asia/Bangkok", delivery={"quiet_hours": {"start": "22:00", "end": "07:00"}}
        )
        night = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
        day = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)  # 12:00 in Bangkok
        assert quiet_reason(quiet, make_signal(), night) == "quiet hours in Asia/Bangkok"
        assert quiet_reason(quiet, make_signal(), day) is None

    def test_critical_alerts_bypass_quiet_hours(self) -> None:
        """A critical alert goes out even in quiet hours."""
        quiet = subscription(delivery={"quiet_hours": {"start": "00:00", "end": "23:59"}})
        now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
        assert quiet_reason(quiet, make_signal(severity=Severity.CRITICAL), now) is None


class TestStore:
    async def test_put_is_idempotent(self, settings: Settings, redis: aioredis.Redis) -> None:
        """Adding the same subscription twice changes nothing the second time."""
        store = SubscriptionStore(redis, settings)
        assert await store.put(subscription()) == "added"
        assert await store.put(subscription()) == "unchanged"
        assert await store.put(subscription(timezone="Asia/Bangkok")) == "updated"
        assert [s.name for s in await store.all()] == ["desk"]
        assert await store.remove("desk")
        assert await store.all() == []

    async def test_yaml_file_loads_twice_without_change(
        self, settings: Settings, redis: aioredis.Redis, tmp_path: Path
    ) -> None:
        """A subscriptions file is idempotent: loading it again reports unchanged."""
        path = tmp_path / "subs.yaml"
        path.write_text(
            "subscriptions:\n  - {name: a, urls: ['console://']}\n"
            "  - {name: b, urls: ['console://'], filters: {countries: [TH]}}\n"
        )
        store = SubscriptionStore(redis, settings)
        assert await store.load_file(path) == {"a": "added", "b": "added"}
        assert await store.load_file(path) == {"a": "unchanged", "b": "unchanged"}

    def test_bad_file_names_the_entry(self, tmp_path: Path) -> None:
        """A bad entry in a subscriptions file is refused naming the file and the field."""
        path = tmp_path / "subs.yaml"
        path.write_text("- {name: a, urls: ['console://'], timezone: Nowhere/City}\n")
        with pytest.raises(SubscriptionFileError, match=r"subs\.yaml: entry 0\.timezone"):
            read_subscriptions_file(path)


class TestRouting:
    async def test_each_subscriber_gets_what_its_filters_select(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """Two subscriptions with different filters each get only their alerts."""
        settings = make_settings(notify_urls=[])
        store = SubscriptionStore(redis, settings)
        base = f"json://127.0.0.1:{http_sink.port}"
        await store.put(
            subscription(name="thai-desk", urls=[f"{base}/thai"], filters={"countries": ["TH"]})
        )
        await store.put(
            subscription(
                name="peace-desk", urls=[f"{base}/peace"], filters={"kinds": ["ceasefire"]}
            )
        )
        border = make_signal(make_report(id="r-border"), countries=("KH", "TH"))
        truce = make_signal(
            make_report(id="r-truce"), label="ceasefire", ceasefire=0.9, countries=("UA",)
        )
        async with running(build_notifier(settings)):
            for signal in (border, truce):
                await redis.xadd(settings.signals_stream, {"__data__": signal.model_dump_json()})
            records = await wait_for(
                lambda: _at_least(stream_entries(redis, settings.deliveries_stream), 4)
            )
        decisions = {(r["subscription"], r["signal_id"]): r["outcome"] for r in records}
        assert decisions == {
            ("thai-desk", "r-border"): "sent",
            ("thai-desk", "r-truce"): "suppressed",
            ("peace-desk", "r-border"): "suppressed",
            ("peace-desk", "r-truce"): "sent",
        }
        assert sorted(r["path"] for r in http_sink.requests) == ["/peace", "/thai"]

    async def test_hourly_cap(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """Past the cap, alerts in the same hour are suppressed and recorded as such."""
        settings = make_settings(notify_urls=[])
        await SubscriptionStore(redis, settings).put(
            subscription(
                name="capped",
                urls=[f"json://127.0.0.1:{http_sink.port}/"],
                delivery={**IMMEDIATE, "max_per_hour": 2},
            )
        )
        async with running(build_notifier(settings)):
            for n in range(4):
                signal = make_signal(make_report(id=f"r-{n}"))
                await redis.xadd(settings.signals_stream, {"__data__": signal.model_dump_json()})
            records = await wait_for(
                lambda: _at_least(stream_entries(redis, settings.deliveries_stream), 4)
            )
        assert len(http_sink.requests) == 2
        assert [r["reason"] for r in records if r["outcome"] == "suppressed"] == [
            "more than 2 alerts in the last hour"
        ] * 2


class TestCommandLine:
    def test_add_list_show_remove_never_print_secrets(self, redis_url: str) -> None:
        """The CLI manages subscriptions and only ever prints masked URLs."""
        env = {
            **os.environ,
            "FLASHPOINT_REDIS_URL": redis_url,
            "FLASHPOINT_KEY_PREFIX": f"cli-{os.getpid()}",
        }

        def flashpoint(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "services.cli", "subscriptions", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        url = f"json://ops:{SECRET}@127.0.0.1:9/hook"
        added = flashpoint(
            "add",
            "ops",
            "--url",
            url,
            "--countries",
            "TH,KH",
            "--timezone",
            "Asia/Bangkok",
            "--quiet",
            "22:00-07:00",
        )
        assert added.returncode == 0, added.stdout + added.stderr
        listed, shown = flashpoint("list"), flashpoint("show", "ops")
        refused = flashpoint("add", "bad", "--url", "console://", "--countries", "XX")
        removed = flashpoint("remove", "ops")
        everything = "".join(p.stdout + p.stderr for p in (added, listed, shown, removed))
        assert SECRET not in everything
        assert "json://ops:****@" in listed.stdout
        assert json.loads(shown.stdout)["timezone"] == "Asia/Bangkok"
        assert refused.returncode == 2
        assert "unknown country code 'XX'" in refused.stdout
        assert removed.stdout.strip() == "ops: removed"


async def _at_least(entries: Any, n: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await entries
    return found if len(found) >= n else None


class TestAlertsCommand:
    async def test_list_and_show_recent_alerts(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """`flashpoint alerts list` and `show` report alerts and their per-channel outcomes."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        signal = make_signal(make_report(id="r-shown"))
        async with running(build_notifier(settings)):
            await redis.xadd(settings.signals_stream, {"__data__": signal.model_dump_json()})
            await wait_for(lambda: stream_entries(redis, settings.deliveries_stream))
        env = {
            **os.environ,
            **{
                f"FLASHPOINT_{k.upper()}": str(v)
                for k, v in {
                    "redis_url": settings.redis_url,
                    "signals_stream": settings.signals_stream,
                    "deliveries_stream": settings.deliveries_stream,
                }.items()
            },
        }

        def alerts(*args: str) -> str:
            return subprocess.run(
                [sys.executable, "-m", "services.cli", "alerts", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout

        listed = alerts("list")
        assert "r-shown\tescalation\tsent 1" in listed
        shown = alerts("show", "r-shown")
        assert "escalation · high · Shelling near Preah Vihear" in shown
        assert "\tdefault\tjson://127.0.0.1:" in shown
        assert "\tsent\t" in shown
