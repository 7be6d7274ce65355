"""The notifier reading signals in batches: grouping, failures, records and time limits."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.notifier.app import build as build_notifier
from services.notifier.deliver import Deliverer
from services.notifier.route import Router
from services.notifier.store import SubscriptionStore
from services.notifier.subscriptions import Subscription
from shared.messages import DeliveryRecord, Place, Severity, Signal
from shared.settings import Settings
from tests.conftest import HttpSink, running, stream_entries, wait_for
from tests.factories import make_report, make_signal

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SA_KAEO = Place(name="Sa Kaeo", country="TH", admin_level=1)
AT_ONCE = {"group_wait_s": 0, "group_interval_s": 0}
MakeRouter = Callable[..., Awaitable[Router]]


def border_signal(
    n: int, label: str = "escalation", text: str = "Artillery shelled the border.", **extra: Any
) -> Signal:
    """Signal ``n`` about the Sa Kaeo border incident."""
    report = make_report(
        id=f"r-{n:03d}",
        source=f"wire-{n % 7}",
        url=f"https://wire.example/{n}",
        title=f"Report {n:03d}",
        text=text,
    )
    return make_signal(
        report,
        label=label,
        countries=("KH", "TH"),
        places=(SA_KAEO,),
        incident_key=f"{label}:KH-TH:sa-kaeo",
        **({"ceasefire": 0.9, "escalation": 0.0} if label == "ceasefire" else {}),
        **extra,
    )


def subscription(name: str, url: str, **values: Any) -> Subscription:
    return Subscription.model_validate({"name": name, "urls": [url], **values})


async def publish(redis: aioredis.Redis, settings: Settings, signals: Sequence[Signal]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for signal in signals:
            pipe.xadd(settings.signals_stream, {"__data__": signal.model_dump_json()})
        await pipe.execute()


async def pending(redis: aioredis.Redis, settings: Settings) -> int:
    return int((await redis.xpending(settings.signals_stream, settings.notifier_group))["pending"])


async def records_of(redis: aioredis.Redis, settings: Settings) -> list[dict[str, Any]]:
    return await stream_entries(redis, settings.deliveries_stream)


class Recorder:
    """A deliverer's record sinks: what was published, and in how many round trips."""

    def __init__(self) -> None:
        self.records: list[DeliveryRecord] = []
        self.round_trips = 0

    async def one(self, record: DeliveryRecord) -> None:
        self.round_trips += 1
        self.records.append(record)

    async def many(self, records: Sequence[DeliveryRecord]) -> None:
        self.round_trips += 1
        self.records.extend(records)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_router(
    make_settings: Callable[..., Settings], redis: aioredis.Redis, recorder: Recorder
) -> MakeRouter:
    """A router over stored ``subscriptions`` whose records go to ``recorder``."""

    async def create(*subscriptions: Subscription, **overrides: Any) -> Router:
        settings = make_settings(notify_urls=[], **overrides)
        store = SubscriptionStore(redis, settings, cache_s=0)
        for sub in subscriptions:
            await store.put(sub)
        deliverer = Deliverer(redis, settings, recorder.one, recorder.many)
        return Router(redis, settings, store, deliverer)

    return create


class TestGrouping:
    async def test_many_signals_of_one_incident_in_one_batch_become_one_alert(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """Forty reports on one incident, read in one batch, give one alert listing them."""
        settings = make_settings(notify_urls=[], flush_interval_s=0.2)
        await SubscriptionStore(redis, settings).put(
            subscription(
                "desk",
                f"json://127.0.0.1:{http_sink.port}/",
                delivery={"group_wait_s": 1, "group_interval_s": 300},
            )
        )
        await publish(redis, settings, [border_signal(n) for n in range(40)])
        async with running(build_notifier(settings)):
            await wait_for(lambda: http_sink.requests, within=15)
            await asyncio.sleep(1.5)  # time for a second alert, which must not come
            assert await pending(redis, settings) == 0
        (alert,) = http_sink.json_bodies()
        assert "Reports: 40" in alert["message"]
        assert "Reported by: 7 outlets" in alert["message"]
        outcomes = Counter(r["outcome"] for r in await records_of(redis, settings))
        assert outcomes == {"grouped": 40, "sent": 1}

    async def test_redelivered_batch_does_not_come_back_as_an_update(
        self, make_router: MakeRouter, http_sink: HttpSink
    ) -> None:
        """Signals routed again after their group went out (a batch retried after a crash)
        are not news: no update is sent for them."""
        router = await make_router(
            subscription(
                "desk",
                f"json://127.0.0.1:{http_sink.port}/",
                delivery={"group_wait_s": 30, "group_interval_s": 300},
            )
        )
        batch = [border_signal(n) for n in range(5)]
        await router.route_batch(batch, T0)
        assert await router.flush(T0 + timedelta(seconds=31)) == 1
        await router.route_batch(batch, T0 + timedelta(seconds=60))
        assert await router.flush(T0 + timedelta(seconds=400)) == 0
        await router.route_batch([*batch, border_signal(99)], T0 + timedelta(seconds=500))
        assert await router.flush(T0 + timedelta(seconds=800)) == 1
        update = http_sink.json_bodies()[-1]
        assert update["title"].startswith("Update: ")
        assert "Reports:" not in update["message"]  # only the new report

    async def test_de_escalation_and_quiet_hours_in_one_batch(
        self, make_router: MakeRouter, recorder: Recorder, http_sink: HttpSink
    ) -> None:
        """In one batch, a ceasefire on an incident the subscriber was told was escalating
        gets through its kinds filter, another does not, and quiet hours hold back all but
        the critical alert."""
        url = f"json://127.0.0.1:{http_sink.port}/"
        router = await make_router(
            subscription(
                "escalations",
                url,
                filters={"kinds": ["escalation"]},
                delivery={"group_wait_s": 30, "group_interval_s": 300},
            ),
            subscription(
                "night",
                url,
                delivery={**AT_ONCE, "quiet_hours": {"start": "00:00", "end": "23:59"}},
            ),
        )
        await router.route_batch([border_signal(1)], T0)
        await router.flush(T0 + timedelta(seconds=31))
        recorder.records.clear()
        elsewhere = make_signal(
            make_report(id="r-elsewhere"),
            label="ceasefire",
            ceasefire=0.9,
            escalation=0.0,
            incident_key="ceasefire:UA:kyiv",
        )
        truce = border_signal(2, label="ceasefire")
        critical = border_signal(3, severity=Severity.CRITICAL)
        await router.route_batch([truce, elsewhere, critical], T0 + timedelta(seconds=60))
        decisions = {(r.subscription, r.signal_id): r.outcome for r in recorder.records}
        assert decisions == {
            ("escalations", "r-002"): "grouped",
            ("escalations", "r-elsewhere"): "suppressed",
            ("escalations", "r-003"): "grouped",
            ("night", "r-002"): "suppressed",
            ("night", "r-elsewhere"): "suppressed",
            ("night", "r-003"): "sent",
        }


class TestRecords:
    async def test_every_decision_of_a_batch_is_recorded_in_one_round_trip(
        self, make_router: MakeRouter, recorder: Recorder, http_sink: HttpSink
    ) -> None:
        """A batch of grouped and suppressed decisions publishes all its records together;
        signals labelled none get none."""
        url = f"json://127.0.0.1:{http_sink.port}/"
        router = await make_router(
            subscription("all", url, delivery={"group_wait_s": 30}),
            subscription("thai", url, filters={"countries": ["TH"]}, delivery={"group_wait_s": 5}),
        )
        batch = [
            border_signal(1),
            make_signal(make_report(id="r-ua"), countries=("UA",), incident_key="e:UA:x"),
            make_signal(make_report(id="r-none"), label="none", escalation=0.1),
            border_signal(2, label="ceasefire"),
        ]
        routed = await router.route_batch(batch, T0)
        assert routed.complete
        assert recorder.round_trips == 1
        decisions = {(r.subscription, r.signal_id): r.outcome for r in recorder.records}
        assert decisions == {
            ("all", "r-001"): "grouped",
            ("all", "r-ua"): "grouped",
            ("all", "r-002"): "grouped",
            ("thai", "r-001"): "grouped",
            ("thai", "r-ua"): "suppressed",
            ("thai", "r-002"): "grouped",
        }
        assert len(recorder.records) == 6

    async def test_a_sent_alert_is_recorded_even_if_a_later_signal_fails(
        self,
        make_router: MakeRouter,
        recorder: Recorder,
        http_sink: HttpSink,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """When routing breaks part-way through a batch, the records of what already went
        out are published before the error propagates."""
        router = await make_router(
            subscription("now", f"json://127.0.0.1:{http_sink.port}/", delivery=AT_ONCE),
            subscription("later", f"json://127.0.0.1:{http_sink.port}/", delivery={}),
        )
        deliver = router.deliverer.deliver

        async def break_on_second(signal: Signal, *args: Any, **kwargs: Any) -> dict[str, str]:
            if signal.id == "r-002":
                raise ConnectionError("Redis went away")
            return await deliver(signal, *args, **kwargs)

        monkeypatch.setattr(router.deliverer, "deliver", break_on_second)
        with pytest.raises(ConnectionError):
            await router.route_batch([border_signal(1), border_signal(2)], T0)
        outcomes = Counter((r.signal_id, r.subscription, r.outcome) for r in recorder.records)
        assert outcomes[("r-001", "now", "sent")] == 1
        assert outcomes[("r-001", "later", "grouped")] == 1
        assert outcomes[("r-002", "later", "grouped")] == 1
        assert len(http_sink.requests) == 1

    async def test_hourly_cap_counts_a_batch_in_arrival_order(
        self, make_router: MakeRouter, recorder: Recorder, http_sink: HttpSink
    ) -> None:
        """With a cap of 2, the first two signals of a batch go out, whatever their ids."""
        router = await make_router(
            subscription(
                "capped",
                f"json://127.0.0.1:{http_sink.port}/",
                delivery={**AT_ONCE, "max_per_hour": 2},
            )
        )
        batch = [make_signal(make_report(id=f"r-{name}")) for name in "dcba"]
        await router.route_batch(batch, T0)
        assert {r.signal_id: r.outcome for r in recorder.records} == {
            "r-d": "sent",
            "r-c": "sent",
            "r-b": "suppressed",
            "r-a": "suppressed",
        }
        await router.route_batch(batch, T0 + timedelta(seconds=5))  # a redelivery: same answer
        assert Counter(r.outcome for r in recorder.records[4:]) == {
            "duplicate": 2,
            "suppressed": 2,
        }


class TestFailures:
    async def test_one_failing_channel_fails_only_its_signal(
        self,
        make_settings: Callable[..., Settings],
        redis: aioredis.Redis,
        http_sink: HttpSink,
        second_sink: HttpSink,
    ) -> None:
        """In a batch of ten, a channel that fails for the first signal: every other alert
        goes out once and is not retried; the failed one is retried through the claimer and
        reaches the recovered channel once, the healthy channel not again."""
        settings = make_settings(
            notify_urls=[
                f"json://127.0.0.1:{http_sink.port}/healthy",
                f"json://127.0.0.1:{second_sink.port}/flaky",
            ]
        )
        second_sink.statuses = [503] * settings.notify_attempts  # the first signal's tries
        await publish(redis, settings, [border_signal(n) for n in range(10)])
        async with running(build_notifier(settings)):
            await wait_for(lambda: len(second_sink.requests) >= 10 + settings.notify_attempts)
            await wait_for(lambda: _no_pending(redis, settings))
            await asyncio.sleep(0.5)  # anything more would be a duplicate
        healthy = Counter(body["title"] for body in http_sink.json_bodies())
        flaky = Counter(
            body["title"] for body in second_sink.json_bodies()[settings.notify_attempts :]
        )
        assert len(healthy) == len(flaky) == 10
        assert set(healthy.values()) == set(flaky.values()) == {1}
        records = await records_of(redis, settings)
        outcomes = Counter((r["signal_id"], r["outcome"]) for r in records)
        assert outcomes[("r-000", "failed")] == 1
        assert outcomes[("r-000", "duplicate")] == 1  # the healthy channel, on the retry
        assert outcomes[("r-000", "sent")] == 2
        assert sum(n for (_, outcome), n in outcomes.items() if outcome == "duplicate") == 1
        assert await redis.xlen(settings.dead_letter_stream) == 0

    async def test_retried_batch_is_duplicate_not_resent(
        self, make_router: MakeRouter, recorder: Recorder, http_sink: HttpSink
    ) -> None:
        """A whole batch routed again (its entries retried one by one after an error) sends
        nothing twice: what went out is recorded as duplicate."""
        router = await make_router(
            subscription("now", f"json://127.0.0.1:{http_sink.port}/", delivery=AT_ONCE)
        )
        batch = [border_signal(n) for n in range(5)]
        assert (await router.route_batch(batch, T0)).complete
        for signal in batch:
            await router.route(signal, T0 + timedelta(seconds=1))
        assert len(http_sink.requests) == 5
        assert Counter(r.outcome for r in recorder.records) == {"sent": 5, "duplicate": 5}

    async def test_refused_channel_dead_letters_only_its_signal(
        self,
        make_settings: Callable[..., Settings],
        redis: aioredis.Redis,
        http_sink: HttpSink,
        second_sink: HttpSink,
    ) -> None:
        """A channel that refuses one signal of a batch for good (404): that signal is
        dead-lettered at once, after one try; the others are delivered and settled."""
        settings = make_settings(notify_urls=[f"json://127.0.0.1:{http_sink.port}/"])
        second_sink.status = 404
        await SubscriptionStore(redis, settings).put(
            subscription(
                "picky",
                f"json://127.0.0.1:{second_sink.port}/",
                filters={"keywords": ["mortar"]},
                delivery=AT_ONCE,
            )
        )
        batch = [border_signal(n) for n in range(5)]
        batch[3] = border_signal(3, text="A mortar round hit the border post.")
        await publish(redis, settings, batch)
        async with running(build_notifier(settings)):
            letters = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
            await wait_for(lambda: _no_pending(redis, settings))
            await asyncio.sleep(0.5)  # a retry would show now
        (letter,) = letters
        assert letter["report_id"] == "r-003"
        assert letter["deliveries"] == 1
        assert letter["error_type"] == "DeliveryRefused"
        assert len(second_sink.requests) == 1
        assert len(http_sink.requests) == 5

    async def test_sends_that_could_outlast_the_handler_timeout_wait(
        self, make_router: MakeRouter, http_sink: HttpSink
    ) -> None:
        """The first signal of a batch always goes; the next ones wait when their sends
        could take longer than the handler timeout has left."""
        router = await make_router(
            subscription("now", f"json://127.0.0.1:{http_sink.port}/", delivery=AT_ONCE),
            handler_timeout_s=0.5,
            notify_timeout_s=0.4,
        )
        routed = await router.route_batch([border_signal(n) for n in range(3)], T0)
        assert routed.deferred == [1, 2]
        assert routed.failures == {}
        assert len(http_sink.requests) == 1

    async def test_sends_that_would_outlast_the_handler_timeout_are_put_off(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
    ) -> None:
        """When the rest of a batch's sends could outlast the handler timeout, they are left
        to the claimer, one at a time; each alert still arrives once."""
        settings = make_settings(
            notify_urls=[f"json://127.0.0.1:{http_sink.port}/"],
            handler_timeout_s=0.5,
            notify_timeout_s=0.4,
        )
        await publish(redis, settings, [border_signal(n) for n in range(3)])
        async with running(build_notifier(settings)):
            await wait_for(lambda: len(http_sink.requests) >= 3)
            await wait_for(lambda: _no_pending(redis, settings))
            await asyncio.sleep(0.5)
        titles = Counter(body["title"] for body in http_sink.json_bodies())
        assert len(titles) == 3
        assert set(titles.values()) == {1}
        assert await redis.xlen(settings.dead_letter_stream) == 0


async def _no_pending(redis: aioredis.Redis, settings: Settings) -> bool:
    return await pending(redis, settings) == 0
