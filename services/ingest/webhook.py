"""The webhook source: ``POST /v1/reports`` with one report or a batch, behind a bearer token.

Valid items go to the inbox (202 with their ids); invalid ones are listed field by field and
dead-lettered, while the valid items of the same batch are still accepted. 401 without a valid
token, 413 over the size limit, 422 when nothing in the request is usable.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from shared.messages import RawReport
from shared.observe import QuietServer, quiet_server
from shared.problems import problems
from shared.settings import Settings

Accept = Callable[[RawReport], Awaitable[str]]
Reject = Callable[[int, str, Any], Awaitable[object]]


class Rejected(BaseModel):
    """One item of a request that was refused, and why."""

    index: int
    problems: list[str]


class Accepted(BaseModel):
    """The answer to a request with at least one usable item."""

    accepted: list[str]
    rejected: list[Rejected] = []


def build_webhook(settings: Settings, token: str, accept: Accept, reject: Reject) -> FastAPI:
    """The webhook application; ``accept`` publishes an item, ``reject`` dead-letters one."""
    app = FastAPI(
        title="Flashpoint webhook",
        description="Publish news reports to Flashpoint. Send one report or a list of them.",
        version="1.0.0",
    )
    limit = settings.webhook_max_bytes
    report_schema = RawReport.model_json_schema()

    @app.post(
        "/v1/reports",
        status_code=202,
        response_model=Accepted,
        responses={401: {}, 413: {}, 422: {"model": Accepted}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [report_schema, {"type": "array", "items": report_schema}]
                        }
                    }
                },
            }
        },
    )
    async def post_reports(request: Request, authorization: str = Header("")) -> JSONResponse:
        if not _authorised(authorization, token):
            return _error(401, "a valid 'Authorization: Bearer <token>' header is required")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return _error(413, f"the body is over {limit} bytes")
        body = await _read_capped(request, limit)
        if body is None:
            return _error(413, f"the body is over {limit} bytes")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return _error(422, f"the body is not JSON: {error}")
        items = payload if isinstance(payload, list) else [payload]
        if not items or len(items) > settings.webhook_max_items:
            return _error(422, f"send 1 to {settings.webhook_max_items} reports")
        answer = Accepted(accepted=[])
        for index, item in enumerate(items):
            try:
                report = RawReport.model_validate(item)
            except ValidationError as error:
                found = problems(error, empty="item")
                answer.rejected.append(Rejected(index=index, problems=found))
                await reject(index, "; ".join(found), item)
                continue
            answer.accepted.append(await accept(report))
        status = 202 if answer.accepted else 422
        return JSONResponse(answer.model_dump(), status_code=status)

    return app


def _authorised(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


async def _read_capped(request: Request, limit: int) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def webhook_server(app: FastAPI, host: str, port: int) -> QuietServer:
    """A server for ``app`` to run inside the ingest's event loop."""
    return quiet_server(app, host, port)


def read_token(settings: Settings) -> str:
    """The bearer token, from FLASHPOINT_WEBHOOK_TOKEN or the file FLASHPOINT_WEBHOOK_TOKEN_FILE."""
    if settings.webhook_token_file is not None:
        token = settings.webhook_token_file.read_text(encoding="utf-8").strip()
    else:
        token = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    if len(token) < 16:
        msg = (
            "the webhook needs a token of at least 16 characters in FLASHPOINT_WEBHOOK_TOKEN "
            "or in the file named by FLASHPOINT_WEBHOOK_TOKEN_FILE"
        )
        raise ValueError(msg)
    return token
