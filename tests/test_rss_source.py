"""The RSS source against a real HTTP server on loopback serving feed files."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.ingest.app import build as build_ingest
from services.ingest.sources.base import (
    RetryLater,
    SourceContext,
    SourceEntry,
    SourceError,
    configure,
)
from services.ingest.sources.http import FetchError, retry_after
from services.ingest.sources.rss import RssOptions, RssSource
from services.ingest.sources.runner import SourceRunner, backoff
from shared.service import Service
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Border desk</title><language>en</language>
<item><title>Shelling near &lt;b&gt;Surin&lt;/b&gt;</title>
<link>https://news.example.org/a?utm_source=rss#top</link>
<guid>a-1</guid><pubDate>Tue, 24 Nov 2026 09:15:00 +0700</pubDate>
<description>&lt;p&gt;Artillery &lt;b&gt;shells&lt;/b&gt; hit villages&amp;nbsp;near the
border.&lt;/p&gt;</description></item>
<item><title>Talks in Kuala Lumpur</title><link>https://news.example.org/b</link><guid>b-2</guid>
<description>Delegations met for ceasefire talks.</description></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom desk</title><id>urn:desk</id>
<updated>2026-11-24T02:00:00Z</updated>
<entry><title>Drone strike in Oddar Meanchey</title><id>urn:e1</id>
<link href="https://atom.example.org/e1"/><updated>2026-11-24T02:00:00Z</updated>
<content type="html">&lt;div&gt;A drone struck an outpost.&lt;/div&gt;</content></entry></feed>"""

RDF = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/">
<channel rdf:about="https://rdf.example.org/"><title>RDF desk</title><link>https://rdf.example.org/</link>
<description>d</description></channel>
<item rdf:about="https://rdf.example.org/1"><title>Troops withdraw from Preah Vihear</title>
<link>https://rdf.example.org/1</link><description>Both armies pulled back.</description></item>
</rdf:RDF>"""

LATIN1 = (
    '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>t</title>'
    "<item><title>Caf\xe9 near the front</title><link>https://l.example.org/1</link>"
    "<description>Soldiers at the caf\xe9 in Sa Kaeo.</description></item></channel></rss>"
).encode("iso-8859-1")


class FeedServer:
    """Serves ``documents`` by path; supports ETag, and a queue of forced statuses."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.forced: list[tuple[int, dict[str, str]]] = []
        self.hits: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append({**dict(self.headers), "path": self.path})
                if server.forced:
                    status, headers = server.forced.pop(0)
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    return
                body = server.documents.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = f'"{hash(body)}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", formatdate(usegmt=True))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def feeds() -> Iterator[FeedServer]:
    server = FeedServer()
    threading.Thread(target=server.httpd.serve_forever, daemon=True).start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


class Collected:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.dead: list[tuple[str, str]] = []

    async def publish(self, item: dict[str, Any]) -> None:
        self.items.append(item)


def rss_source(
    feeds: FeedServer, path: str, redis: aioredis.Redis, settings: Settings, collected: Collected
) -> RssSource:
    async def publish(item: dict[str, Any]) -> None:
        collected.items.append({"source": "desk", **item})

    async def dead_letter(entry_id: str, error: str, payload: dict[str, str]) -> None:
        collected.dead.append((entry_id, error))

    context = SourceContext("desk", redis, settings, publish, dead_letter)
    return RssSource(RssOptions.model_validate({"url": f"{feeds.url}{path}"}), context)


class TestFormats:
    @pytest.mark.parametrize(
        ("document", "titles"),
        [
            (RSS, ["Shelling near <b>Surin</b>", "Talks in Kuala Lumpur"]),
            (ATOM, ["Drone strike in Oddar Meanchey"]),
            (RDF, ["Troops withdraw from Preah Vihear"]),
        ],
    )
    async def test_rss_atom_and_rdf_parse(
        self,
        feeds: FeedServer,
        redis: aioredis.Redis,
        settings: Settings,
        document: str,
        titles: list[str],
    ) -> None:
        """All three feed formats give items with title, text, link and source."""
        feeds.documents["/feed"] = document.encode()
        collected = Collected()
        assert await rss_source(feeds, "/feed", redis, settings, collected).poll() == len(titles)
        assert [item["title"] for item in collected.items] == titles
        assert all(item["source"] == "desk" and item["text"] for item in collected.items)

    async def test_dates_become_utc_and_language_is_kept(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """A pubDate in +0700 becomes UTC; the feed's language is passed on."""
        feeds.documents["/feed"] = RSS.encode()
        collected = Collected()
        await rss_source(feeds, "/feed", redis, settings, collected).poll()
        assert collected.items[0]["published_at"] == "2026-11-24T02:15:00+00:00"
        assert collected.items[0]["language"] == "en"

    async def test_non_utf8_feed(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """A feed declared ISO-8859-1 is decoded correctly."""
        feeds.documents["/latin1"] = LATIN1
        collected = Collected()
        await rss_source(feeds, "/latin1", redis, settings, collected).poll()
        assert collected.items[0]["title"] == "Café near the front"


class TestPoliteness:
    async def test_unchanged_feed_costs_a_304_and_restart_does_not_republish(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """The second poll sends If-None-Match and gets 304; a new source object too."""
        feeds.documents["/feed"] = RSS.encode()
        first, again = Collected(), Collected()
        await rss_source(feeds, "/feed", redis, settings, first).poll()
        assert await rss_source(feeds, "/feed", redis, settings, again).poll() == 0
        assert "If-None-Match" in feeds.hits[-1]
        feeds.documents["/feed"] = RSS.replace("Border desk", "Border desk 2").encode()
        assert await rss_source(feeds, "/feed", redis, settings, again).poll() == 0
        assert again.items == []

    async def test_429_with_retry_after_backs_off(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """429 with Retry-After raises RetryLater for that long; the runner waits as much."""
        feeds.forced = [(429, {"Retry-After": "120"})]
        source = rss_source(feeds, "/feed", redis, settings, Collected())
        with pytest.raises(RetryLater) as raised:
            await source.poll()
        assert raised.value.seconds == 120
        (configured,) = configure(
            [SourceEntry(name="desk", type="rss", interval_s=60, options={"url": feeds.url})], "t"
        )
        feeds.forced = [(503, {"Retry-After": "90"})]
        dead_letters = Service(settings, "ingest").dead_letters
        runner = SourceRunner([configured], redis, settings, Collected().publish, dead_letters)
        delay, ok = await runner.poll_once(configured, source)
        assert (delay, ok) == (90, False)

    async def test_errors_back_off_exponentially(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """A failing feed is retried later and later, capped at an hour."""
        with pytest.raises(FetchError, match="HTTP 404"):
            await rss_source(feeds, "/missing", redis, settings, Collected()).poll()
        assert [backoff(60, n) for n in (1, 2, 3, 10)] == [60, 120, 240, 3600]
        assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0
        assert retry_after(None) == 60.0


class TestBadInput:
    async def test_malformed_feed_is_dead_lettered(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """A document that is no feed goes to the dead letters with the reason."""
        feeds.documents["/broken"] = b"<html><body>Not a feed <<<</body>"
        collected = Collected()
        assert await rss_source(feeds, "/broken", redis, settings, collected).poll() == 0
        assert collected.dead
        assert "not a feed" in collected.dead[0][1]

    async def test_huge_document_is_refused(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """A document over the size cap is refused, naming the cap."""
        feeds.documents["/huge"] = b"x" * 2_000_000
        source = rss_source(feeds, "/huge", redis, settings, Collected())
        source.options = RssOptions.model_validate(
            {"url": f"{feeds.url}/huge", "max_bytes": 1_000_000}
        )
        with pytest.raises(FetchError, match="over 1000000 bytes"):
            await source.poll()


class TestConfiguration:
    def test_check_names_entry_and_field(self, tmp_path: Path) -> None:
        """`flashpoint sources check` refuses a bad entry, naming it and the field."""
        bad = tmp_path / "sources.yaml"
        bad.write_text("sources:\n  - {name: desk, type: rss, options: {url: not-a-url}}\n")
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "sources", "check", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ.copy(),
        )
        assert result.returncode == 2
        assert "source 0 ('desk'): options.url" in result.stdout

    def test_unknown_type_lists_known_ones(self) -> None:
        """An unknown type is refused with the registered types."""
        with pytest.raises(
            SourceError, match=r"unknown source type .nntp. \(known: gdelt, jsonl, rss\)"
        ):
            configure([SourceEntry(name="x", type="nntp")], "test")


class TestThroughIngest:
    async def test_feed_items_come_out_clean_once(
        self, feeds: FeedServer, make_settings: Any, redis: aioredis.Redis, tmp_path: Path
    ) -> None:
        """From a sources file: clean text, canonical URL, UTC time, each item once; stats."""
        feeds.documents["/feed"] = RSS.encode()
        sources = tmp_path / "sources.yaml"
        sources.write_text(
            f"sources:\n  - {{name: desk, type: rss, interval_s: 0.2, "
            f"options: {{url: '{feeds.url}/feed'}}}}\n"
        )
        settings = make_settings(sources_file=sources)
        async with running(build_ingest(settings)):
            reports = await wait_for(
                lambda: _at_least(stream_entries(redis, settings.reports_stream), 2)
            )
            await asyncio.sleep(0.6)  # more polls: 304s, nothing new
            reports = await stream_entries(redis, settings.reports_stream)
        assert len(reports) == 2
        shelling = next(r for r in reports if r["title"].startswith("Shelling"))
        assert shelling["title"] == "Shelling near Surin"
        assert shelling["text"] == "Artillery shells hit villages near the border."
        assert shelling["url"] == "https://news.example.org/a"
        assert shelling["published_at"] == "2026-11-24T02:15:00Z"
        assert shelling["source"] == "desk"
        env = {
            **os.environ,
            "FLASHPOINT_REDIS_URL": settings.redis_url,
            "FLASHPOINT_KEY_PREFIX": settings.key_prefix,
            "FLASHPOINT_SOURCES_FILE": str(sources),
        }
        listed = flashpoint(env, "sources", "list")
        assert "desk\trss\t" in listed.stdout
        assert "\t2\t0\t0\t-" in listed.stdout


def flashpoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _at_least(entries: Any, n: int) -> list[dict[str, Any]] | None:
    found: list[dict[str, Any]] = await entries
    return found if len(found) >= n else None


GDELT = {
    "articles": [
        {
            "url": "https://thai.example/a1",
            "title": "Clashes erupt on Thai-Cambodian border",
            "seendate": "20261124T021500Z",
            "domain": "thai.example",
            "language": "English",
            "sourcecountry": "Thailand",
        },
        {
            "url": "https://kh.example/b2",
            "title": "Cambodia reports shelling in Oddar Meanchey",
            "seendate": "20261124T030000Z",
            "domain": "kh.example",
            "language": "Khmer",
        },
        {"url": "", "title": "no link"},
    ]
}


class TestGdelt:
    async def test_article_list_in_gdelt_format(
        self, feeds: FeedServer, redis: aioredis.Redis, settings: Settings
    ) -> None:
        """The query goes out in GDELT's form; articles come back as reports, once."""
        import json as jsonlib

        from services.ingest.sources.gdelt import GdeltOptions, GdeltSource

        feeds.documents["/api/v2/doc/doc"] = jsonlib.dumps(GDELT).encode()
        collected = Collected()

        async def publish(item: dict[str, Any]) -> None:
            collected.items.append(item)

        async def dead_letter(entry_id: str, error: str, payload: dict[str, str]) -> None:
            collected.dead.append((entry_id, error))

        options = GdeltOptions.model_validate(
            {
                "query": "(Thailand OR Cambodia) (clash OR ceasefire)",
                "base_url": f"{feeds.url}/api/v2/doc/doc",
            }
        )
        source = GdeltSource(options, SourceContext("gdelt", redis, settings, publish, dead_letter))
        assert await source.poll() == 2
        query = feeds.hits[0]["path"]
        assert "mode=ArtList" in query
        assert "format=json" in query
        assert "query=%28Thailand+OR+Cambodia%29" in query
        assert await source.poll() == 0  # already published
        first = collected.items[0]
        assert first == {
            "title": "Clashes erupt on Thai-Cambodian border",
            "text": "Clashes erupt on Thai-Cambodian border",
            "url": "https://thai.example/a1",
            "source": "thai.example",
            "published_at": "2026-11-24T02:15:00+00:00",
            "language": "en",
        }
        assert collected.items[1]["language"] == "km"
        assert len(collected.dead) == 2


class TestIsolation:
    async def test_failing_source_does_not_hold_up_others(
        self, feeds: FeedServer, make_settings: Any, redis: aioredis.Redis, tmp_path: Path
    ) -> None:
        """A feed that 404s and an empty one back off and are recorded; a good feed flows."""
        feeds.documents["/good"] = RSS.encode()
        feeds.documents["/empty"] = b""
        sources = tmp_path / "sources.yaml"
        entry = "  - {{name: {0}, type: rss, interval_s: 0.2, options: {{url: '{1}/{0}'}}}}\n"
        sources.write_text(
            "sources:\n"
            + "".join(entry.format(name, feeds.url) for name in ("gone", "empty", "good"))
        )
        settings = make_settings(sources_file=sources)
        async with running(build_ingest(settings)):
            await wait_for(lambda: _at_least(stream_entries(redis, settings.reports_stream), 2))
            gone = await wait_for(lambda: _stats(redis, settings, "gone", "failures"))
            empty = await wait_for(lambda: stream_entries(redis, settings.dead_letter_stream))
        assert int(gone) >= 1
        assert any(letter["origin_stream"] == "source:empty" for letter in empty)


async def _stats(redis: aioredis.Redis, settings: Settings, name: str, field: str) -> Any:
    from services.ingest.sources.runner import stats_key

    return await redis.hget(stats_key(settings, name), field)
