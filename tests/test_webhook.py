"""The webhook on a real loopback port: authentication, validation, size limits, OpenAPI."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from services.ingest.app import build as build_ingest
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for

TOKEN = "s3cret-webhook-token-123"
REPORT = {
    "title": "Shelling near Surin",
    "text": "Artillery shells hit villages.",
    "url": "https://example.org/a",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def webhook(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = make_settings(
        webhook_port=free_port(), webhook_token=TOKEN, webhook_max_bytes=5000, webhook_max_items=10
    )
    async with running(build_ingest(settings)):
        base = f"http://127.0.0.1:{settings.webhook_port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await wait_for(lambda: _up(client), within=10)
            yield client, settings


async def _up(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/openapi.json")).status_code == 200
    except httpx.TransportError:
        return False


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_one_report_is_accepted(
    webhook: tuple[httpx.AsyncClient, Settings], redis: aioredis.Redis
) -> None:
    """A valid report gets 202 with the id of its inbox entry, and reaches the reports."""
    client, settings = webhook
    answer = await client.post("/v1/reports", json=REPORT, headers=auth())
    assert answer.status_code == 202
    (entry_id,) = answer.json()["accepted"]
    assert await redis.xrange(settings.inbox_stream, entry_id, entry_id)
    reports = await wait_for(lambda: stream_entries(redis, settings.reports_stream))
    assert reports[0]["title"] == "Shelling near Surin"


async def test_batch_accepts_valid_items_and_lists_problems_of_the_rest(
    webhook: tuple[httpx.AsyncClient, Settings], redis: aioredis.Redis
) -> None:
    """Invalid items are listed field by field and dead-lettered; valid ones still go in."""
    client, settings = webhook
    batch = [REPORT, {"title": "no text"}, {"text": "ok", "url": "ftp://x"}]
    answer = await client.post("/v1/reports", json=batch, headers=auth())
    assert answer.status_code == 202
    body: dict[str, Any] = answer.json()
    assert len(body["accepted"]) == 1
    assert body["rejected"] == [
        {"index": 1, "problems": ["text: Field required"]},
        {"index": 2, "problems": ["url: Value error, url must start with http:// or https://"]},
    ]
    letters = await stream_entries(redis, settings.dead_letter_stream)
    assert [letter["entry_id"] for letter in letters] == ["item 1", "item 2"]


@pytest.mark.parametrize("headers", [{}, auth("wrong-token-wrong-token"), {"Authorization": TOKEN}])
async def test_without_a_valid_token_401(
    webhook: tuple[httpx.AsyncClient, Settings], headers: dict[str, str]
) -> None:
    """No token, a wrong one, or one without 'Bearer' is refused with 401."""
    client, _ = webhook
    assert (await client.post("/v1/reports", json=REPORT, headers=headers)).status_code == 401


async def test_limits_and_garbage(webhook: tuple[httpx.AsyncClient, Settings]) -> None:
    """Over the size limit 413; not JSON, nothing usable, or too many items 422."""
    client, _ = webhook
    huge = {"text": "x" * 6000}
    assert (await client.post("/v1/reports", json=huge, headers=auth())).status_code == 413
    garbage = await client.post("/v1/reports", content=b"{not json", headers=auth())
    assert garbage.status_code == 422
    assert "not JSON" in garbage.json()["detail"]
    none_valid = await client.post("/v1/reports", json=[{"x": 1}], headers=auth())
    assert none_valid.status_code == 422
    assert none_valid.json()["rejected"][0]["problems"] == ["text: Field required"]
    many = await client.post("/v1/reports", json=[{"text": "a"}] * 11, headers=auth())
    assert many.status_code == 422


async def test_openapi_describes_the_endpoint(webhook: tuple[httpx.AsyncClient, Settings]) -> None:
    """The OpenAPI document names POST /v1/reports and the report schema."""
    client, _ = webhook
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/reports"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert "text" in schema["oneOf"][0]["properties"]
    assert set(operation["responses"]) >= {"202", "401", "413", "422"}


def test_no_token_no_start(make_settings: Callable[..., Settings]) -> None:
    """A webhook without a long enough token refuses to start, saying what is missing."""
    with pytest.raises(ValueError, match="FLASHPOINT_WEBHOOK_TOKEN"):
        build_ingest(make_settings(webhook_port=free_port(), webhook_token="short"))
