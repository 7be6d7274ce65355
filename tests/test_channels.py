"""Unit tests for delivery channels and the secret-masking in settings."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from services.notifier.channels import Channel, ChannelError
from shared.settings import Settings, mask_url

JSON_URL = "json://user:s3cretpass@127.0.0.1:9/hook"
SLACK_TOKEN = "TIiajkdnlazkcOXrIdevi7FQ"
SLACK_URL = f"slack://T1JJ3T3L2/A1BRTD4JD/{SLACK_TOKEN}"


class TestChannel:
    def test_console_is_accepted(self) -> None:
        """The console:// scheme is registered and accepted."""
        channel = Channel("console://")

        assert channel.masked.startswith("console://")
        assert len(channel.digest) == 16

    def test_unknown_scheme_names_scheme(self) -> None:
        """An unknown scheme is refused with a ChannelError naming it."""
        with pytest.raises(ChannelError, match="'nosuchscheme'"):
            Channel("nosuchscheme://user:topsecret@host/tokenvalue123")

    def test_unknown_scheme_hides_secrets(self) -> None:
        """The error for an unknown scheme does not repeat the URL's secret parts."""
        with pytest.raises(ChannelError) as info:
            Channel("nosuchscheme://user:topsecret@host/tokenvalue123")

        assert "topsecret" not in str(info.value)
        assert "tokenvalue123" not in str(info.value)

    def test_masked_hides_password(self) -> None:
        """The masked URL keeps the host but not the password."""
        channel = Channel(JSON_URL)

        assert "s3cretpass" not in channel.masked
        assert "127.0.0.1" in channel.masked

    def test_repr_hides_password(self) -> None:
        """repr() shows only the masked URL."""
        assert "s3cretpass" not in repr(Channel(JSON_URL))

    def test_scrub_removes_password_and_url(self) -> None:
        """scrub() masks the full URL and the bare password."""
        channel = Channel(JSON_URL)

        scrubbed = channel.scrub(f"posting to {JSON_URL} failed; password s3cretpass refused")

        assert "s3cretpass" not in scrubbed
        assert "posting to" in scrubbed

    def test_slack_url_is_accepted_and_masked(self) -> None:
        """A slack URL is accepted and its masked form hides the path token."""
        channel = Channel(SLACK_URL)

        assert channel.masked.startswith("slack://")
        assert SLACK_TOKEN not in channel.masked

    def test_scrub_removes_slack_token(self) -> None:
        """scrub() removes the slack token, in the URL and on its own."""
        channel = Channel(SLACK_URL)

        assert SLACK_TOKEN not in channel.scrub(f"failed posting to {SLACK_URL}")
        assert SLACK_TOKEN not in channel.scrub(f"bad token {SLACK_TOKEN}")

    def test_masked_hides_webhook_path_token_and_query(self) -> None:
        """A token in a generic webhook's path or query never shows in the masked URL."""
        channel = Channel("json://127.0.0.1:9/hooks/S3CRETtoken42?-apikey=Q7secretkey")

        assert "S3CRETtoken42" not in channel.masked
        assert "Q7secretkey" not in channel.masked
        assert channel.masked.startswith("json://127.0.0.1:9/hooks/")

    def test_scrub_removes_telegram_bot_token(self) -> None:
        """A token in the host part of the URL is scrubbed from error text."""
        token = "123456789:AAHhYJkBXVkm3T5Q5ExCkTz7RTWmq8zvUHo"
        channel = Channel(f"tgram://{token}/12345")

        scrubbed = channel.scrub(f"error: {token} rejected")
        assert "AAHhYJkBXVkm3T5Q5ExCkTz7RTWmq8zvUHo" not in scrubbed
        assert "AAHhYJkBXVkm3T5Q5ExCkTz7RTWmq8zvUHo" not in channel.masked

    def test_scrub_leaves_other_text(self) -> None:
        """Text without secrets is returned unchanged."""
        assert Channel(JSON_URL).scrub("connection refused") == "connection refused"


class TestMaskUrl:
    def test_hides_redis_password(self) -> None:
        """A redis password is replaced by ****, keeping host, port and database."""
        masked = mask_url("redis://:hunter22@redis.example:6379/0")

        assert "hunter22" not in masked
        assert masked == "redis://:****@redis.example:6379/0"

    def test_keeps_user_name(self) -> None:
        """The user name stays visible while the password is hidden."""
        assert mask_url("rediss://app:hunter22@host/1") == "rediss://app:****@host/1"

    @pytest.mark.parametrize(
        "url", ["redis://127.0.0.1:6379/0", "redis://user@host:6379/0", "unix:///tmp/r.sock"]
    )
    def test_passwordless_url_unchanged(self, url: str) -> None:
        """A URL without a password is returned unchanged."""
        assert mask_url(url) == url


def make_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with ``overrides`` given as arguments."""
    return Settings(**overrides)


class TestNotifyUrls:
    EXPECTED: ClassVar[list[str]] = ["console://", "json://a:b@127.0.0.1/x"]

    def test_split_from_argument(self) -> None:
        """A comma-and-space separated string becomes a list of URLs."""
        settings = make_settings(notify_urls="console://, json://a:b@127.0.0.1/x")

        assert settings.notify_urls == self.EXPECTED

    def test_split_from_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """FLASHPOINT_NOTIFY_URLS is split the same way."""
        monkeypatch.setenv("FLASHPOINT_NOTIFY_URLS", "console://, json://a:b@127.0.0.1/x")

        assert make_settings().notify_urls == self.EXPECTED

    def test_default_is_console(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without configuration, alerts go to the console."""
        monkeypatch.delenv("FLASHPOINT_NOTIFY_URLS", raising=False)

        assert make_settings().notify_urls == ["console://"]
