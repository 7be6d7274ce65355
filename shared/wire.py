"""How messages are stored in stream entries: one ``__data__`` field of plain JSON.

FastStream's default envelope is a binary format that only FastStream reads. Flashpoint's
streams are a contract with outside programs, so every entry holds plain JSON instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from fast_depends.library.serializer import SerializerProto
from faststream._internal.basic_types import SendableMessage
from faststream._internal.parser import CodecProto
from faststream.redis.parser.message import MessageFormat
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class PlainJsonFormat(MessageFormat):
    """The message body as JSON, no headers; decoding is left to the handler's validation."""

    @classmethod
    async def encode(
        cls,
        *,
        message: Sequence[SendableMessage] | SendableMessage,
        reply_to: str | None,
        headers: dict[str, Any] | None,
        correlation_id: str,
        serializer: SerializerProto | None = None,
        codec: CodecProto | None = None,
    ) -> bytes:
        """The JSON bytes of ``message``."""
        built = await cls.build(
            message=message,
            reply_to=reply_to,
            headers=headers,
            correlation_id=correlation_id,
            serializer=serializer,
            codec=codec,
        )
        return built.data

    @classmethod
    def parse(cls, data: bytes) -> tuple[bytes, dict[str, Any]]:
        """The entry's bytes as the body, with no headers."""
        return data, {}


DATA_FIELD = b"__data__"


def read_entry(model: type[M], fields: Mapping[Any, Any]) -> M:
    """The message a stream entry holds, validated straight from its bytes.

    ``fields`` is the entry as the Redis client returns it (bytes or text): one ``__data__``
    field of JSON, or flat field/value pairs read as a JSON object of strings, as FastStream
    reads a single entry. Raises ``ValidationError`` when the message is invalid and
    ``UnicodeDecodeError`` when a flat field is not UTF-8.
    """
    data = fields.get(DATA_FIELD) or fields.get("__data__")
    if data:
        return model.model_validate_json(data)
    return model.model_validate({_text(key): _text(value) for key, value in fields.items()})


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
