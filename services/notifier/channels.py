"""Delivery channels: one apprise URL each, with its secrets kept out of sight."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import apprise

import services.notifier.console  # noqa: F401  registers the console:// scheme
from services.notifier.formats import Style, style_of


class ChannelError(ValueError):
    """A channel URL that no apprise plugin accepts."""


@dataclass(frozen=True)
class SendResult:
    """How one send went: success, or the reason it failed (and the HTTP status, if known)."""

    ok: bool
    error: str | None = None
    status: int | None = None

    @property
    def permanent(self) -> bool:
        """A refusal that retrying cannot fix: a 4xx other than 408 (timeout) or 429 (slow down)."""
        return (
            self.status is not None and 400 <= self.status < 500 and self.status not in {408, 429}
        )

    @property
    def rate_limited(self) -> bool:
        """The channel asked us to slow down (HTTP 429)."""
        return self.status == 429


class Channel:
    """One apprise URL. Only :attr:`masked` ever leaves this object."""

    def __init__(self, url: str) -> None:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.split("://", 1)[0] if "://" in url else "(none)"
            msg = f"no apprise plugin accepts a URL with scheme {scheme!r}"
            raise ChannelError(msg)
        self._url = url
        self._apprise = apprise.Apprise()
        self._apprise.add(plugin)
        self.masked: str = _mask_path(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        self.digest: str = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.style: Style = style_of(url)
        self._secrets = _secret_parts(url)

    def __repr__(self) -> str:
        return f"Channel({self.masked!r})"

    async def send(
        self, title: str, body: str, timeout_s: float, body_format: str = apprise.NotifyFormat.TEXT
    ) -> SendResult:
        """Send once; failures come back with apprise's reason, secrets removed."""
        result = await self._apprise.async_notify(
            title=title, body=body, body_format=body_format, timeout=timeout_s
        )
        if result:
            return SendResult(ok=True)
        problems = [entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}]
        reason = problems[-1] if problems else f"apprise status {result.status.name}"
        status = _STATUS.search(reason)
        return SendResult(
            ok=False, error=self.scrub(reason), status=int(status.group(1)) if status else None
        )

    def scrub(self, text: str) -> str:
        """``text`` with every secret part of this channel's URL masked."""
        text = text.replace(self._url, self.masked)
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text


_STATUS = re.compile(r"error=(\d{3})\b")


def _mask_path(url: str) -> str:
    """apprise's privacy URL without its query, and with long path segments shortened.

    apprise masks the tokens its plugins declare private, but a generic webhook's path and
    query (``json://host/hooks/<token>?-apikey=...``) may be secrets too.
    """
    parts = urlsplit(url)
    segments = [
        f"{seg[0]}...{seg[-1]}" if len(seg) > 6 and "..." not in seg else seg
        for seg in parts.path.split("/")
    ]
    return f"{parts.scheme}://{parts.netloc}{'/'.join(segments)}"


def _secret_parts(url: str) -> list[str]:
    """Every piece of ``url`` after its scheme that could be a secret (over-masking is fine)."""
    rest = url.split("://", 1)[-1]
    pieces = {unquote(piece) for piece in re.split(r"[/:@?&=#,]", rest)}
    return sorted((p for p in pieces if len(p) >= 3), key=len, reverse=True)
