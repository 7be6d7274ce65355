"""Redis commands packed by hiredis's C packer instead of redis-py's Python one.

redis-py's synchronous client packs commands with hiredis when it is installed; its asyncio
client always packs in Python, joining the command's bytes again for every argument. Packing
cost the ingest 34 us a report that way (its batch scripts take nine arguments a report) and
7 us with hiredis, which the project already installs for parsing replies
(``redis[hiredis]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import hiredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    ConnectionPool,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.exceptions import DataError

if TYPE_CHECKING:
    _Connection = AbstractConnection
else:
    _Connection = object


class _HiredisPacking(_Connection):
    """Mixin for a redis-py asyncio connection: ``pack_command`` through hiredis.

    hiredis encodes text as strict UTF-8, redis-py's default; a connection configured with
    another encoding packs with redis-py's own code.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        """The command in the Redis protocol, as redis-py's synchronous client packs it."""
        encoder = self.encoder
        if encoder.encoding != "utf-8" or encoder.encoding_errors != "strict":
            return super().pack_command(*args)
        command = args[0]
        if isinstance(command, str):
            args = (*command.encode().split(), *args[1:])
        elif b" " in command:
            args = (*command.split(), *args[1:])
        if memoryview in map(type, args):  # hiredis would copy a strided view's raw buffer
            args = tuple(map(_packable, args))
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass
        try:  # hiredis refuses bytearray, which redis-py accepts
            return [hiredis.pack_command(tuple(map(_packable, args)))]
        except TypeError as error:  # redis-py raises DataError for what it cannot encode
            raise DataError(str(error)) from error


def _packable(arg: Any) -> Any:
    return bytes(arg) if isinstance(arg, (bytearray, memoryview)) else arg


_PACKING_WITH_HIREDIS: dict[type[AbstractConnection], type[AbstractConnection]] = {
    base: type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    for base in (Connection, SSLConnection, UnixDomainSocketConnection)
}


def connection_class(url: str) -> type[Connection]:
    """The connection class ``url`` asks for (TCP, TLS or Unix socket), packing with hiredis.

    Typed as redis-py's TCP ``Connection``, the type FastStream's broker asks for; a Unix
    socket connection is a sibling class with the same interface.
    """
    base: type[AbstractConnection] = parse_url(url).get("connection_class", Connection)
    return cast("type[Connection]", _PACKING_WITH_HIREDIS[base])


def connection_pool(url: str, **options: Any) -> ConnectionPool:
    """A pool of connections to ``url``, packing with hiredis; ``options`` are defaults that
    the URL's own (``?socket_timeout=5``) override, as with ``ConnectionPool.from_url``."""
    merged: dict[str, Any] = {
        **options,
        **parse_url(url),
        "connection_class": connection_class(url),
    }
    return ConnectionPool(**merged)
