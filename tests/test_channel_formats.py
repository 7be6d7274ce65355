"""Alerts as each channel receives them: real SMTP on loopback; Slack and Telegram requests."""

from __future__ import annotations

import email
import json
import socket
from collections.abc import Iterator
from email.message import Message
from email.policy import default
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller

from services.notifier.channels import Channel
from services.notifier.deliver import Deliverer
from services.notifier.formats import LIMITS, render_for, style_of
from shared.messages import DeliveryRecord, Evidence, Place, Severity
from tests.factories import make_report, make_signal

HOSTILE = (
    "Troops clashed <script>alert(1)</script> near <b>Surin</b> & Koh Kong; "
    "@channel @everyone <!everyone> <https://evil.example|click> *bold* " + "shelling " * 900
)
SLACK_URL = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
TELEGRAM_URL = "tgram://123456789:AAHhYJkBXVkm3T5Q5ExCkTz7RTWmq8zvUHo/-100987654"


def hostile_signal() -> Any:
    report = make_report(
        title="Clash <i>at</i> the border @here",
        text=HOSTILE,
        url="https://news.example.org/a?b=1&c=<2>",
    )
    evidence = tuple(
        Evidence(
            kind="escalation",
            rule="escalation.clash",
            phrase=f"clashed{n} <x>",
            start=0,
            end=7,
            weight=0.6,
        )
        for n in range(40)
    )
    return make_signal(
        report,
        evidence=evidence,
        severity=Severity.CRITICAL,
        places=(Place(name="Surin", country="TH", admin_level=1),),
    )


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


class Captured:
    """Every HTTP request apprise makes, answered with ``statuses`` in turn (then 200)."""

    def __init__(self) -> None:
        self.requests: list[requests.PreparedRequest] = []
        self.statuses: list[tuple[int, dict[str, str]]] = []
        self.body = b'{"ok": true}'  # Telegram's answer; Slack's webhook answers "ok"

    def send(self, request: requests.PreparedRequest, **_: Any) -> Any:
        self.requests.append(request)
        status, headers = self.statuses.pop(0) if self.statuses else (200, {})
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = self.body
        response.request = request
        return response


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> Captured:
    """Slack's and Telegram's hosts are unreachable here: capture at requests' send()."""
    captured = Captured()
    monkeypatch.setattr(requests.Session, "send", captured.send)
    return captured


def payload(request: requests.PreparedRequest) -> dict[str, Any]:
    body = request.body
    decoded: dict[str, Any] = json.loads(body.decode() if isinstance(body, bytes) else str(body))
    return decoded


class TestEmail:
    async def test_html_and_text_parts_escaped_with_a_clear_subject(
        self, smtp: tuple[int, Mailbox]
    ) -> None:
        """Mail arrives with the severity, signal and place in the subject, two escaped parts."""
        port, mailbox = smtp
        url = f"mailto://127.0.0.1:{port}?from=alerts@example.org&to=desk@example.org"
        channel = Channel(url)
        alert = render_for(channel.style, hostile_signal(), "Asia/Bangkok")
        result = await channel.send(alert.title, alert.body, 15, alert.body_format)
        assert result.ok, result.error
        (message,) = mailbox.messages
        assert message["Subject"].startswith("🔴 ESCALATION · critical (5/5) · Surin:")
        parts = {part.get_content_type(): part for part in message.walk()}
        html_part = parts["text/html"].get_payload(decode=True).decode()
        text_part = parts["text/plain"].get_payload(decode=True).decode()
        assert "<script>" not in html_part
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_part
        assert '<a href="https://news.example.org/a?b=1&amp;c=&lt;2&gt;">' in html_part
        assert "(12:15 Asia/Bangkok)" in html_part
        assert "Troops clashed" in text_part


class TestSlack:
    async def test_request_is_escaped_and_within_the_block_limit(self, http: Captured) -> None:
        """The webhook gets mrkdwn with no live mentions or links from the news, under 3000."""
        http.body = b"ok"
        channel = Channel(SLACK_URL)
        alert = render_for(channel.style, hostile_signal())
        assert (await channel.send(alert.title, alert.body, 15, alert.body_format)).ok
        (request,) = http.requests
        assert (
            request.url
            == "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
        )
        sent = json.dumps(payload(request), ensure_ascii=False)
        assert "<!everyone>" not in sent
        assert "<script>" not in sent
        assert "<https://evil.example|click>" not in sent
        assert "@channel" not in sent
        assert "@everyone" not in sent
        assert "\u2039!everyone\u203a" in sent
        assert "<https://news.example.org/a?b=1&amp;c=%3C2%3E>" in sent
        assert len(alert.body) <= LIMITS["slack"]

    async def test_500_then_200_is_one_retry(
        self, http: Captured, make_settings: Any, redis: Any
    ) -> None:
        """A server error is retried once by the deliverer and the second answer counts."""
        http.statuses = [(500, {}), (200, {})]
        http.body = b"ok"
        records: list[DeliveryRecord] = []

        async def record(item: DeliveryRecord) -> None:
            records.append(item)

        deliverer = Deliverer(redis, make_settings(notify_backoff_s=0.01), record)
        failures = await deliverer.deliver(make_signal(), "desk", "UTC", [Channel(SLACK_URL)])
        assert failures == {}
        assert len(http.requests) == 2
        assert [(r.outcome, r.attempts) for r in records] == [("sent", 2)]


class TestTelegram:
    async def test_html_parse_mode_within_4096(self, http: Captured) -> None:
        """Telegram gets HTML parse mode, escaped text and at most 4096 characters."""
        channel = Channel(TELEGRAM_URL)
        alert = render_for(channel.style, hostile_signal())
        assert (await channel.send(alert.title, alert.body, 15, alert.body_format)).ok
        request = http.requests[-1]
        assert request.url is not None
        assert request.url.startswith("https://api.telegram.org/bot123456789:")
        assert request.url.endswith("/sendMessage")
        sent = payload(request)
        assert sent["parse_mode"] == "HTML"
        assert sent["chat_id"] == -100987654
        assert len(sent["text"]) <= 4096
        assert "<script>" not in sent["text"]
        assert "&lt;b&gt;Surin&lt;/b&gt;" in sent["text"] or "Surin" in sent["text"]


class TestRendering:
    @pytest.mark.parametrize("style", ["text", "email", "slack", "telegram"])
    def test_long_text_is_cut_cleanly(self, style: Any) -> None:
        """Long alerts stay under the channel's limit and end no escape or tag half-way."""
        alert = render_for(style, hostile_signal())
        assert len(alert.title) + len(alert.body) <= LIMITS[style]
        assert not alert.body.rstrip().endswith(("&", "&l", "&lt", "<", "</"))
        if style in {"email", "telegram"}:
            assert alert.body.count("<b>") == alert.body.count("</b>")

    def test_styles_by_scheme(self) -> None:
        """mailto is email, slack is Slack, tgram is Telegram, the rest plain text."""
        assert [style_of(u) for u in ("mailtos://x", SLACK_URL, TELEGRAM_URL, "json://h")] == [
            "email",
            "slack",
            "telegram",
            "text",
        ]


class TestPlainFormat:
    async def test_text_format_sends_plain_mail(
        self, smtp: tuple[int, Mailbox], make_settings: Any, redis: Any
    ) -> None:
        """A subscription asking for text gets a plain-text email, no HTML part."""
        port, mailbox = smtp

        async def record(item: DeliveryRecord) -> None:
            pass

        channel = Channel(f"mailto://127.0.0.1:{port}?from=alerts@example.org&to=desk@example.org")
        deliverer = Deliverer(redis, make_settings(), record)
        assert await deliverer.deliver(make_signal(), "desk", "UTC", [channel], plain=True) == {}
        (message,) = mailbox.messages
        assert [part.get_content_type() for part in message.walk()] == ["text/plain"]
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        assert "Scores: escalation 0.88" in body.decode()
