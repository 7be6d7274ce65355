"""A JSON Lines file or folder of them, replayed and then followed for new lines and files."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.ingest.sources.base import Publish, SourceContext
from shared.logs import get_logger

log = get_logger(__name__)

MAX_LINE_BYTES = 1_000_000


class InvalidLine(ValueError):
    """A line of a JSON Lines file that is not a JSON object."""


class JsonlOptions(BaseModel):
    """Options of a ``jsonl`` source."""

    model_config = ConfigDict(extra="forbid")

    path: Path


class JsonlSource:
    """Publishes each JSON object line of ``path`` (a file, or every ``*.jsonl`` in a folder).

    How far each file was read is kept in Redis, so a restart continues where it stopped.
    Lines that are not JSON objects are dead-lettered with their file and line number.
    """

    Options = JsonlOptions

    def __init__(self, options: JsonlOptions, context: SourceContext) -> None:
        self.path = options.path
        self.context = context
        self.client = context.redis
        self.offsets_key = context.key("offsets")

    def files(self) -> list[Path]:
        """The files this source reads, in name order."""
        if self.path.is_dir():
            return sorted(p for p in self.path.glob("*.jsonl") if p.is_file())
        return [self.path] if self.path.is_file() else []

    async def poll(self) -> int:
        """Publish every complete line added since the last poll; return how many."""
        published = 0
        for file in self.files():
            published += await self._read_new_lines(file, self.context.publish)
        return published

    async def _read_new_lines(self, file: Path, publish: Publish) -> int:
        field = str(file)
        position = Position.parse(await self.client.hget(self.offsets_key, field))
        lines, restarted = await asyncio.to_thread(_complete_lines_after, file, position.offset)
        if restarted:
            log.warning("jsonl file shrank; reading it again from the start", file=field)
            position = Position()
        published = 0
        for raw in lines:
            position = Position(position.offset + len(raw), position.line + 1)
            if raw.strip():
                published += await self._publish_line(file, position.line, raw, publish)
            await self.client.hset(self.offsets_key, field, str(position))
        if published:
            log.info("jsonl lines published", file=field, count=published)
        return published

    async def _publish_line(self, file: Path, number: int, raw: bytes, publish: Publish) -> int:
        try:
            item = parse_line(raw)
        except InvalidLine as error:
            await self.context.dead_letter(
                f"line {number}",
                f"{file}: {error}",
                {"line": raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace")},
            )
            return 0
        await publish(item)
        return 1


@dataclass(frozen=True)
class Position:
    """How far a file was read: bytes and complete lines."""

    offset: int = 0
    line: int = 0

    @classmethod
    def parse(cls, stored: bytes | str | None) -> Position:
        """The position stored in Redis as ``"<offset> <line>"`` (start when missing)."""
        if not stored:
            return cls()
        text = stored.decode() if isinstance(stored, bytes) else stored
        offset, line = text.split()
        return cls(int(offset), int(line))

    def __str__(self) -> str:
        return f"{self.offset} {self.line}"


def _complete_lines_after(file: Path, offset: int) -> tuple[list[bytes], bool]:
    """The complete lines after byte ``offset``, and whether the file shrank below it."""
    with file.open("rb") as handle:
        restarted = handle.seek(0, 2) < offset
        handle.seek(0 if restarted else offset)
        return [raw for raw in handle if raw.endswith(b"\n")], restarted


def parse_line(raw: bytes) -> dict[str, Any]:
    """One JSON object from one line, or :class:`InvalidLine` saying what is wrong."""
    if len(raw) > MAX_LINE_BYTES:
        msg = f"line is {len(raw)} bytes; the limit is {MAX_LINE_BYTES}"
        raise InvalidLine(msg)
    try:
        item = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        msg = f"not valid JSON: {error}"
        raise InvalidLine(msg) from error
    if not isinstance(item, dict):
        msg = f"expected a JSON object, got {type(item).__name__}"
        raise InvalidLine(msg)
    return item
