"""Unit tests for services/ingest/normalize.py."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.ingest.normalize import (
    canonical_url,
    clean_text,
    detect_language,
    text_fingerprint,
    to_report,
)
from shared.messages import RawReport

FETCHED = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def raw(text: str, **fields: object) -> RawReport:
    """A raw report as a source would send it."""
    return RawReport.model_validate({"text": text, **fields})


class TestCanonicalUrl:
    def test_removes_tracking_params(self) -> None:
        """utm_*, fbclid and gclid parameters are removed."""
        url = "https://example.com/a?utm_source=x&utm_medium=y&fbclid=f&gclid=g"

        assert canonical_url(url) == "https://example.com/a"

    def test_keeps_other_params_in_order(self) -> None:
        """Non-tracking parameters are kept, in their original order."""
        url = "https://example.com/a?b=2&utm_campaign=c&a=1"

        assert canonical_url(url) == "https://example.com/a?b=2&a=1"

    def test_drops_fragment(self) -> None:
        """The fragment is removed."""
        assert canonical_url("https://example.com/a?x=1#section-2") == "https://example.com/a?x=1"

    def test_lowercases_scheme_and_host_not_path(self) -> None:
        """Scheme and host are lower-cased; the path keeps its case."""
        assert canonical_url("HTTPS://News.Example.COM/Path") == "https://news.example.com/Path"

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
        ],
    )
    def test_drops_default_ports(self, url: str, expected: str) -> None:
        """Port 80 for http and 443 for https are dropped."""
        assert canonical_url(url) == expected

    @pytest.mark.parametrize(
        "url", ["http://example.com:8080/a", "https://example.com:80/a", "http://example.com:443/a"]
    )
    def test_keeps_non_default_ports(self, url: str) -> None:
        """A port that is not the scheme's default is kept."""
        assert canonical_url(url) == url

    def test_empty_path_becomes_slash(self) -> None:
        """A URL without a path gets ``/``, so both spellings are equal."""
        assert canonical_url("https://example.com") == canonical_url("https://example.com/")


class TestCleanText:
    def test_strips_tags(self) -> None:
        """Markup is removed, leaving the words."""
        assert clean_text("<p>Shelling <b>resumed</b></p>") == "Shelling resumed"

    def test_unescapes_entities(self) -> None:
        """HTML entities become the characters they denote."""
        assert clean_text("Thai &amp; Cambodian &quot;talks&quot;") == 'Thai & Cambodian "talks"'

    def test_normalises_to_nfc(self) -> None:
        """Decomposed characters are composed (NFC)."""
        assert clean_text("caf" + "e\u0301") == "caf\u00e9"

    def test_collapses_whitespace(self) -> None:
        """Runs of whitespace become one space and the ends are stripped."""
        assert clean_text("  two \n\n soldiers\t\twounded  ") == "two soldiers wounded"


class TestTextFingerprint:
    def test_equal_across_case_and_spacing(self) -> None:
        """Texts that differ only in case and spacing share a fingerprint."""
        assert text_fingerprint("Troops  Clashed\nat dawn ") == text_fingerprint(
            "troops clashed at DAWN"
        )

    def test_differs_for_different_words(self) -> None:
        """Texts with different words have different fingerprints."""
        assert text_fingerprint("troops clashed") != text_fingerprint("troops withdrew")


class TestToReport:
    def test_id_stable_across_tracking_params(self) -> None:
        """The same article with different tracking parameters gets the same id."""
        one = to_report(raw("a", url="https://ex.com/a?utm_source=x"), FETCHED)
        two = to_report(raw("b", url="https://EX.com/a#top"), FETCHED)

        assert one.id == two.id
        assert one.id.startswith("r-")
        assert one.url == "https://ex.com/a"

    def test_different_urls_get_different_ids(self) -> None:
        """Different articles get different ids."""
        one = to_report(raw("a", url="https://ex.com/a"), FETCHED)
        two = to_report(raw("a", url="https://ex.com/b"), FETCHED)

        assert one.id != two.id

    def test_without_url_id_comes_from_text(self) -> None:
        """Without a URL, texts differing only in case and spacing share an id."""
        one = to_report(raw("Troops  clashed at dawn"), FETCHED)
        two = to_report(raw("troops clashed AT dawn"), FETCHED)
        other = to_report(raw("troops withdrew at dawn"), FETCHED)

        assert one.url is None
        assert one.id == two.id
        assert one.id != other.id

    def test_missing_published_at_is_estimated(self) -> None:
        """Without published_at, the fetch time is used and marked as estimated."""
        report = to_report(raw("hello"), FETCHED)

        assert report.published_at == FETCHED
        assert report.published_estimated is True

    def test_given_published_at_is_not_estimated(self) -> None:
        """A given published_at is kept and not marked as estimated."""
        published = datetime(2026, 11, 20, 12, 0, tzinfo=timezone(timedelta(hours=7)))

        report = to_report(raw("hello", published_at=published), FETCHED)

        assert report.published_at == datetime(2026, 11, 20, 5, 0, tzinfo=UTC)
        assert report.published_estimated is False

    def test_naive_published_at_is_utc(self) -> None:
        """A naive published_at is read as UTC."""
        raw_report = raw("hello", published_at=datetime(2026, 11, 20, 5, 15))

        report = to_report(raw_report, FETCHED)

        assert report.published_at == datetime(2026, 11, 20, 5, 15, tzinfo=UTC)
        assert report.published_estimated is False

    def test_text_and_title_are_cleaned(self) -> None:
        """Title and text are cleaned of markup and extra whitespace."""
        raw_report = raw("<p>Border  &amp; troops</p>", title=" <b>Clash</b> ")

        report = to_report(raw_report, FETCHED)

        assert report.text == "Border & troops"
        assert report.title == "Clash"


class TestLanguage:
    @pytest.mark.parametrize(
        ("text", "language"),
        [
            ("Thai and Cambodian troops exchanged artillery fire near the border.", "en"),
            ("ทหารไทยและกัมพูชาปะทะกันที่บริเวณชายแดนเมื่อเช้าวันอังคาร", "th"),
            ("កងទ័ពថៃ និងកម្ពុជា បានប៉ះទង្គិចគ្នានៅតាមព្រំដែន កាលពីព្រឹកថ្ងៃអង្គារ", "km"),
            ("Les troupes ont échangé des tirs d'artillerie près de la frontière.", "fr"),
            ("Quân đội Thái Lan và Campuchia đã đấu pháo gần khu vực biên giới.", "vi"),
            ("Таиландские и камбоджийские войска обменялись огнём у границы.", "ru"),  # noqa: RUF001
            ("BORDER CLASH: TROOPS EXCHANGE FIRE NEAR SURIN AT DAWN", "en"),
        ],
    )
    def test_language_is_detected_when_missing(self, text: str, language: str) -> None:
        """A report without a language gets the detected one (Khmer and capitals too)."""
        raw = RawReport.model_validate({"text": text})
        assert to_report(raw, FETCHED).language == language

    def test_given_language_is_kept(self) -> None:
        """A language the source gives is not second-guessed."""
        raw = RawReport.model_validate({"text": "Troops clashed at the border.", "language": "en"})
        assert to_report(raw, FETCHED).language == "en"

    @pytest.mark.parametrize("text", ["ok", "12345 67890 12345 67890 12345", ""])
    def test_no_answer_when_unclear(self, text: str) -> None:
        """Too short, or nothing but numbers: no language rather than a guess."""
        assert detect_language(text) is None

    def test_model_ships_with_the_package(self, tmp_path: Path) -> None:
        """Detection works in a fresh process with no network and downloads nothing."""
        code = (
            "import socket\n"
            "def refuse(*args, **kwargs):\n"
            "    raise OSError('network disabled in this test')\n"
            "socket.socket.connect = refuse\n"
            "socket.create_connection = refuse\n"
            "from services.ingest.normalize import detect_language\n"
            "print(detect_language('Troops exchanged artillery fire near the border.'))\n"
        )
        env = {**os.environ, "FTLANG_CACHE": str(tmp_path / "cache")}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "en"
        assert not (tmp_path / "cache").exists()
