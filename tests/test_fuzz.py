"""Arbitrary input: nothing crashes, every bad item is refused or dead-lettered with a reason."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.classifier.classify import Classifier
from services.classifier.gazetteer import builtin_gazetteer
from services.classifier.rules import builtin_rule_set
from services.ingest.app import build as build_ingest
from services.ingest.normalize import to_report
from services.notifier.formats import LIMITS, render_for
from shared.messages import RawReport
from shared.settings import Settings
from shared.streams import describe_error
from tests.conftest import running, wait_for
from tests.factories import make_report, make_signal

CLASSIFIER = Classifier((builtin_rule_set(),), builtin_gazetteer())
NOW = datetime(2026, 11, 26, tzinfo=UTC)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.dictionaries(
    st.sampled_from(
        [
            "text",
            "title",
            "url",
            "source",
            "published_at",
            "language",
            "schema_version",
            "id",
            "other",
        ]
    ),
    JSON | st.text(max_size=300),
    max_size=8,
)
FOREIGN_TAG = re.compile(r"<(?!/?(p|b|i|a|ul|li|blockquote|small)[ >])")
PROPERTY = hypothesis_settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(FIELDS)
def test_any_payload_is_a_report_or_a_clear_refusal(payload: dict[str, Any]) -> None:
    """Any JSON object becomes a report, or is refused with a reason a person can read."""
    try:
        raw = RawReport.model_validate(payload)
    except ValidationError as error:
        reason = describe_error(error)
        assert reason.startswith("invalid message: ")
        assert len(reason) > len("invalid message: ")
        return
    report = to_report(raw, NOW)
    assert report.text
    assert report.published_at.tzinfo is not None


@PROPERTY
@given(st.text(max_size=2000), st.text(max_size=200))
def test_any_text_classifies(text: str, title: str) -> None:
    """Whatever the text, classification works and evidence points into it."""
    report = make_report(text=text if text.strip() else "x", title=title, url=None)
    signal = CLASSIFIER.classify(report)
    composed = f"{report.title}\n{report.text}" if report.title else report.text
    for item in signal.evidence:
        assert composed[item.start : item.end] == item.phrase


@PROPERTY
@given(st.text(min_size=1, max_size=6000), st.sampled_from(["text", "email", "slack", "telegram"]))
def test_any_text_renders_within_the_channel_limit(text: str, style: Any) -> None:
    """Untrusted text of any length and content renders within the limit, markup escaped."""
    signal = make_signal(make_report(text=text.strip() or "x", title=text[:150]))
    alert = render_for(style, signal)
    assert len(alert.title) + len(alert.body) <= LIMITS[style]
    if style in {"email", "telegram"}:
        assert not FOREIGN_TAG.search(alert.body), "only Flashpoint's own tags may appear"
    if style == "slack":
        assert "<!" not in alert.body
        assert "<@" not in alert.body


def junk(rng: random.Random) -> dict[bytes | str, bytes | str]:
    """One random stream entry: binary junk, broken JSON, wrong types or stray fields."""
    choice = rng.randrange(5)
    if choice == 0:
        return {b"__data__": rng.randbytes(rng.randrange(1, 200))}
    if choice == 1:
        return {"__data__": json.dumps({"text": "ok"})[: rng.randrange(1, 12)]}
    if choice == 2:
        return {"text": "", "title": "x" * rng.randrange(0, 50)}
    if choice == 3:
        return {"__data__": json.dumps({"text": rng.random(), "url": [1, 2]})}
    return {b"\xff" + rng.randbytes(3): rng.randbytes(8)}


async def test_junk_on_the_inbox_is_dead_lettered_and_the_stream_keeps_flowing(
    settings: Settings, redis: aioredis.Redis
) -> None:
    """300 junk entries among 30 good ones: 30 reports, 300 dead letters, no crash."""
    rng = random.Random(20261126)
    raw_client = aioredis.Redis.from_url(settings.redis_url)
    good = 0
    async with running(build_ingest(settings)):
        async with raw_client.pipeline(transaction=False) as pipe:
            for n in range(330):
                if n % 11 == 0:
                    pipe.xadd(settings.inbox_stream, {"text": f"Good report {n} from the border."})
                    good += 1
                else:
                    pipe.xadd(settings.inbox_stream, junk(rng))
            await pipe.execute()
        await wait_for(lambda: _xlen(redis, settings.dead_letter_stream, 300), within=60)
        await wait_for(lambda: _xlen(redis, settings.reports_stream, good), within=30)
    await raw_client.aclose()
    letters = [
        json.loads(f["__data__"]) for _, f in await redis.xrange(settings.dead_letter_stream)
    ]
    assert len(letters) == 300
    assert all(letter["error"] for letter in letters)
    assert (await redis.xpending(settings.inbox_stream, settings.ingest_group))["pending"] == 0


async def _xlen(redis: aioredis.Redis, stream: str, n: int) -> bool:
    return int(await redis.xlen(stream)) >= n
