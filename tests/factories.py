"""Factories of valid messages for tests: pass only what the test is about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.messages import Report, Severity, Signal

NOW = datetime(2026, 11, 20, 5, 15, tzinfo=UTC)


def make_report(**overrides: Any) -> Report:
    """A valid report about shelling, with ``overrides`` applied."""
    values: dict[str, Any] = {
        "id": "r-0123456789abcdef0123",
        "source": "test",
        "url": "https://example.com/news/1",
        "title": "Shelling near Preah Vihear",
        "text": "Artillery shelled positions near the border.",
        "published_at": NOW,
        "fetched_at": NOW,
    }
    values.update(overrides)
    return Report.model_validate(values)


def make_signal(report: Report | None = None, **overrides: Any) -> Signal:
    """A HIGH escalation signal about ``report`` (default: :func:`make_report`)."""
    values: dict[str, Any] = {
        "report": report or make_report(),
        "label": "escalation",
        "escalation": 0.88,
        "ceasefire": 0.0,
        "severity": Severity.HIGH,
        "classifier": "builtin@1",
    }
    values.update(overrides)
    return Signal.model_validate(values)
