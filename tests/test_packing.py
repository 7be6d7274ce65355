"""Commands packed by hiredis are byte for byte what redis-py's own packer sends."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from shared.packing import connection_class, connection_pool

ARGUMENTS = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary().map(bytearray),
    st.binary().map(memoryview),
    st.binary().map(lambda data: memoryview(data)[::2]),  # strided: not one run of memory
)


def python_packed(*args: object) -> bytes:
    return b"".join(bytes(part) for part in Connection().pack_command(*args))


def hiredis_packed(*args: object) -> bytes:
    return b"".join(connection_class("redis://127.0.0.1")().pack_command(*args))


@given(st.sampled_from(["SET", b"XADD", "CLIENT SETNAME", b"SCRIPT LOAD"]), st.lists(ARGUMENTS))
def test_packed_as_redis_py_packs(command: str | bytes, arguments: list[object]) -> None:
    assert hiredis_packed(command, *arguments) == python_packed(command, *arguments)


@pytest.mark.parametrize("value", [None, True, object()])
def test_what_redis_py_refuses_is_refused(value: object) -> None:
    with pytest.raises(DataError):
        hiredis_packed("SET", "key", value)
    with pytest.raises(DataError):
        python_packed("SET", "key", value)


def test_another_encoding_packs_as_redis_py_does() -> None:
    latin = connection_class("redis://127.0.0.1")(encoding="latin-1")
    assert latin.pack_command("SET", "key", "é") == Connection(encoding="latin-1").pack_command(
        "SET", "key", "é"
    )


def test_the_url_options_win_over_the_defaults() -> None:
    """As with ``ConnectionPool.from_url``: what the URL says is kept, the rest defaults."""
    pool = connection_pool(
        "redis://:secret@127.0.0.1:6380/3?socket_timeout=2",
        socket_timeout=15,
        retry_on_timeout=True,
    )
    options = pool.connection_kwargs
    assert (options["password"], options["port"], options["db"]) == ("secret", 6380, 3)
    assert options["socket_timeout"] == 2
    assert options["retry_on_timeout"] is True


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("redis://127.0.0.1:6379/0", Connection),
        ("rediss://127.0.0.1:6380/0", SSLConnection),
        ("unix:///run/redis.sock", UnixDomainSocketConnection),
    ],
)
def test_the_url_picks_the_connection(url: str, base: type) -> None:
    assert issubclass(connection_class(url), base)
    assert connection_class(url).__name__ == f"Hiredis{base.__name__}"
    assert connection_pool(url).connection_class is connection_class(url)


async def test_a_round_trip_through_the_pool(redis_url: str) -> None:
    client = aioredis.Redis.from_pool(connection_pool(redis_url, socket_timeout=5))
    key = f"flashpoint-test:packing:{uuid.uuid4().hex}"
    try:
        await client.set(key, "é" * 10_000)
        assert (await client.get(key)).decode() == "é" * 10_000
        await client.delete(key)
    finally:
        await client.aclose()
