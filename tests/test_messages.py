"""Unit tests for the stream messages in shared/messages.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.messages import (
    SCHEMA_VERSION,
    DeadLetter,
    RawReport,
    Severity,
    Signal,
)
from tests.factories import NOW, make_report


class TestRawReport:
    def test_text_is_required(self) -> None:
        """A raw report without text is refused."""
        with pytest.raises(ValidationError, match="text"):
            RawReport.model_validate({"title": "only a title"})

    def test_text_is_stripped(self) -> None:
        """Surrounding whitespace is removed from the text."""
        assert (
            RawReport.model_validate({"text": "  shelling reported \n"}).text == "shelling reported"
        )

    @pytest.mark.parametrize("text", ["", "   ", "\n\t"])
    def test_blank_text_is_refused(self, text: str) -> None:
        """Text that is empty after stripping is refused."""
        with pytest.raises(ValidationError):
            RawReport.model_validate({"text": text})

    def test_flat_redis_strings_are_converted(self) -> None:
        """String values as XADD delivers them are converted to their field types."""
        raw = RawReport.model_validate(
            {
                "text": "hello",
                "schema_version": "1",
                "published_at": "2026-11-20T05:15:00Z",
                "url": "https://example.com/a",
            }
        )

        assert raw.schema_version == 1
        assert raw.published_at == NOW
        assert raw.published_at.utcoffset() == timedelta(0)
        assert raw.url == "https://example.com/a"

    @pytest.mark.parametrize("field", ["url", "language", "published_at"])
    @pytest.mark.parametrize("blank", ["", "   "])
    def test_blank_optional_fields_become_none(self, field: str, blank: str) -> None:
        """A blank url, language or published_at is treated as missing."""
        raw = RawReport.model_validate({"text": "hello", field: blank})

        assert getattr(raw, field) is None

    @pytest.mark.parametrize("url", ["ftp://example.com/a", "example.com/a", "javascript:x"])
    def test_url_must_be_http(self, url: str) -> None:
        """A URL that is not http(s) is refused."""
        with pytest.raises(ValidationError, match="http"):
            RawReport.model_validate({"text": "hello", "url": url})

    @pytest.mark.parametrize("url", ["http://example.com/", "HTTPS://EXAMPLE.COM/x"])
    def test_http_urls_are_accepted(self, url: str) -> None:
        """http and https URLs, in any case, are kept as given."""
        assert RawReport.model_validate({"text": "hello", "url": url}).url == url

    def test_unknown_fields_are_ignored(self) -> None:
        """Fields a newer producer adds are dropped, not refused."""
        raw = RawReport.model_validate({"text": "hello", "sentiment": "grim"})

        assert "sentiment" not in raw.model_dump()
        assert raw.text == "hello"

    def test_newer_schema_version_is_refused(self) -> None:
        """A schema_version above SCHEMA_VERSION is refused with a clear reason."""
        with pytest.raises(ValidationError, match="is not supported"):
            RawReport.model_validate({"text": "hello", "schema_version": SCHEMA_VERSION + 1})

    def test_schema_version_zero_is_refused(self) -> None:
        """Versions start at 1, so 0 is refused."""
        with pytest.raises(ValidationError, match="is not supported"):
            RawReport.model_validate({"text": "hello", "schema_version": 0})


class TestReport:
    def test_aware_datetimes_become_utc(self) -> None:
        """Datetimes in another zone are converted to UTC, keeping the instant."""
        bangkok = timezone(timedelta(hours=7))
        local = datetime(2026, 11, 20, 12, 15, tzinfo=bangkok)

        report = make_report(published_at=local, fetched_at=local)

        assert report.published_at == NOW
        assert report.published_at.tzinfo is UTC
        assert report.fetched_at.tzinfo is UTC

    @pytest.mark.parametrize("field", ["published_at", "fetched_at"])
    def test_naive_datetimes_are_refused(self, field: str) -> None:
        """A datetime without a time zone is refused."""
        with pytest.raises(ValidationError, match=field):
            make_report(**{field: datetime(2026, 11, 20, 5, 15)})

    @pytest.mark.parametrize("report_id", ["r-abc", "a.b:c_d-1", "x" * 128])
    def test_valid_ids_are_accepted(self, report_id: str) -> None:
        """Ids of letters, digits and ``_.:-`` up to 128 characters are accepted."""
        assert make_report(id=report_id).id == report_id

    @pytest.mark.parametrize("report_id", ["", "has space", "slash/id", "x" * 129, "é"])
    def test_invalid_ids_are_refused(self, report_id: str) -> None:
        """Ids outside the pattern are refused."""
        with pytest.raises(ValidationError, match="id"):
            make_report(id=report_id)


class TestSignal:
    def test_id_is_report_id(self) -> None:
        """A signal is identified by its report's id."""
        signal = Signal(
            report=make_report(id="r-signal-1"),
            label="escalation",
            escalation=0.8,
            ceasefire=0.0,
            severity=Severity.HIGH,
            classifier="builtin@1",
        )

        assert signal.id == "r-signal-1"


class TestDeadLetter:
    def test_json_round_trip(self) -> None:
        """A dead letter survives serialisation to JSON and back unchanged."""
        letter = DeadLetter(
            origin_stream="flashpoint:inbox",
            entry_id="1700000000000-0",
            group="ingest",
            consumer="host-ingest",
            deliveries=5,
            error="boom",
            error_type="ValueError",
            payload={"text": "hello", "url": "https://example.com/"},
            report_id="r-1",
            dead_at=NOW,
        )

        restored = DeadLetter.model_validate_json(letter.model_dump_json())

        assert restored == letter
        assert restored.payload == {"text": "hello", "url": "https://example.com/"}
        assert restored.dead_at == NOW
