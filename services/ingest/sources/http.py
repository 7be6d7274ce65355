"""Polite HTTP GET for sources: timeouts, size caps, Retry-After on 429 and 503."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.ingest.sources.base import RetryLater


class FetchError(ValueError):
    """A document that could not be fetched, with the reason."""


@dataclass(frozen=True)
class Fetched:
    """An answer: its status, headers and body (empty for a 304)."""

    status: int
    headers: httpx.Headers
    body: bytes


async def fetch(
    url: str,
    *,
    headers: dict[str, str],
    timeout_s: float,
    max_bytes: int,
    params: dict[str, Any] | None = None,
) -> Fetched:
    """GET ``url``; a 304 comes back as is, 429/503 raise RetryLater, other errors FetchError."""
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client,
            client.stream("GET", url, headers=headers, params=params) as response,
        ):
            if response.status_code == 304:
                return Fetched(304, response.headers, b"")
            if response.status_code in {429, 503}:
                wait = retry_after(response.headers.get("Retry-After"))
                reason = f"{url}: HTTP {response.status_code}, retry in {wait:.0f}s"
                raise RetryLater(wait, reason)
            if response.status_code >= 400:
                msg = f"{url}: HTTP {response.status_code}"
                raise FetchError(msg)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    msg = f"{url}: the document is over {max_bytes} bytes"
                    raise FetchError(msg)
                chunks.append(chunk)
            return Fetched(response.status_code, response.headers, b"".join(chunks))
    except httpx.HTTPError as error:
        msg = f"{url}: {type(error).__name__}: {error}"
        raise FetchError(msg) from error


def retry_after(value: str | None, default: float = 60.0) -> float:
    """Seconds a Retry-After header asks for (seconds or an HTTP date)."""
    if not value:
        return default
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max((when - datetime.now(UTC)).total_seconds(), 1.0)
