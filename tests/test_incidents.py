"""Grouping, updates, de-escalation and re-announcement, driven with explicit clock times."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.notifier.deliver import Deliverer
from services.notifier.incidents import update_title
from services.notifier.route import Router
from services.notifier.store import SubscriptionStore
from services.notifier.subscriptions import Subscription
from shared.messages import DeliveryRecord, Place, Severity
from shared.settings import Settings
from tests.conftest import HttpSink
from tests.factories import make_report, make_signal

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SA_KAEO = Place(name="Sa Kaeo", country="TH", admin_level=1)


def border_signal(report_id: str, source: str, label: str = "escalation", **extra: Any) -> Any:
    report = make_report(
        id=report_id,
        source=source,
        url=f"https://{source}.example/{report_id}",
        title=f"Report {report_id} from {source}",
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


@pytest.fixture
async def router(
    make_settings: Callable[..., Settings], redis: aioredis.Redis, http_sink: HttpSink
) -> Router:
    settings = make_settings(notify_urls=[])
    records: list[DeliveryRecord] = []

    async def record(item: DeliveryRecord) -> None:
        records.append(item)

    store = SubscriptionStore(redis, settings, cache_s=0)
    await store.put(
        Subscription.model_validate(
            {
                "name": "oncall",
                "urls": [f"json://127.0.0.1:{http_sink.port}/"],
                "filters": {"kinds": ["escalation"]},
                "delivery": {
                    "group_wait_s": 30,
                    "group_interval_s": 300,
                    "repeat_interval_s": 3600,
                },
            }
        )
    )
    return Router(redis, settings, store, Deliverer(redis, settings, record))


def titles(sink: HttpSink) -> list[str]:
    return [body["title"] for body in sink.json_bodies()]


async def test_reports_within_group_wait_become_one_alert(
    router: Router, http_sink: HttpSink
) -> None:
    """Three outlets reporting one situation within the group wait give one alert."""
    for n, source in enumerate(("wire-a", "wire-b", "wire-c")):
        await router.route(border_signal(f"r-{n}", source), T0 + timedelta(seconds=n))
    assert await router.flush(T0 + timedelta(seconds=10)) == 0
    assert await router.flush(T0 + timedelta(seconds=31)) == 1
    (alert,) = http_sink.json_bodies()
    assert alert["title"].startswith("🔴 ESCALATION")
    assert "Reported by: 3 outlets" in alert["message"]
    assert "Reports: 3" in alert["message"]


async def test_update_only_after_the_group_interval_and_only_if_new(
    router: Router, http_sink: HttpSink
) -> None:
    """A later report waits for the group interval; with nothing new, nothing is sent."""
    await router.route(border_signal("r-1", "wire-a"), T0)
    await router.flush(T0 + timedelta(seconds=31))
    await router.route(border_signal("r-2", "wire-b"), T0 + timedelta(seconds=60))
    assert await router.flush(T0 + timedelta(seconds=120)) == 0
    assert await router.flush(T0 + timedelta(seconds=332)) == 1
    assert titles(http_sink)[1].startswith("Update: ")
    assert await router.flush(T0 + timedelta(seconds=700)) == 0
    assert len(http_sink.requests) == 2


async def test_redelivered_signal_does_not_repeat_the_group(
    router: Router, http_sink: HttpSink
) -> None:
    """The same signal routed twice counts once in its group."""
    signal = border_signal("r-1", "wire-a")
    await router.route(signal, T0)
    await router.route(signal, T0 + timedelta(seconds=1))
    await router.flush(T0 + timedelta(seconds=31))
    (alert,) = http_sink.json_bodies()
    assert "Reports:" not in alert["message"]


async def test_ceasefire_on_escalating_incident_is_a_de_escalation_update(
    router: Router, http_sink: HttpSink
) -> None:
    """Who got the escalation hears of the ceasefire, though they subscribed to escalations."""
    await router.route(border_signal("r-1", "wire-a"), T0)
    await router.flush(T0 + timedelta(seconds=31))
    truce = border_signal("r-2", "wire-b", label="ceasefire")
    await router.route(truce, T0 + timedelta(seconds=400))
    await router.flush(T0 + timedelta(seconds=400))
    assert titles(http_sink)[1].startswith("De-escalation update: 🕊️ CEASEFIRE")
    fight = border_signal("r-3", "wire-c", severity=Severity.CRITICAL)
    await router.route(fight, T0 + timedelta(seconds=800))
    await router.flush(T0 + timedelta(seconds=800))
    assert titles(http_sink)[2].startswith("Reopened, fighting again: 🔴 ESCALATION")


async def test_active_incident_is_re_announced_after_the_repeat_interval(
    router: Router, http_sink: HttpSink
) -> None:
    """With reports still coming, the incident is announced again after the repeat interval."""
    await router.route(border_signal("r-1", "wire-a"), T0)
    await router.flush(T0 + timedelta(seconds=31))
    await router.route(border_signal("r-2", "wire-b"), T0 + timedelta(seconds=1000))
    assert await router.flush(T0 + timedelta(seconds=1000)) == 1
    assert await router.flush(T0 + timedelta(seconds=3000)) == 0
    assert await router.flush(T0 + timedelta(seconds=4601)) == 1
    assert titles(http_sink)[2].startswith("Still active: ")
    assert await router.flush(T0 + timedelta(hours=4)) == 0
    assert await router.flush(T0 + timedelta(hours=9)) == 0
    assert len(http_sink.requests) == 3


@pytest.mark.parametrize(
    ("previous", "current", "title"),
    [
        (None, "escalation", None),
        ("escalation", "escalation", "Update"),
        ("escalation", "ceasefire", "De-escalation update"),
        ("ceasefire", "escalation", "Reopened, fighting again"),
    ],
)
def test_update_titles(previous: Any, current: Any, title: str | None) -> None:
    """The title prefix follows the incident's previous and current kind."""
    assert update_title(previous, current, repeat=False) == title
