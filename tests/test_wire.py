"""How a stream entry's fields become a message: ``__data__`` JSON or flat pairs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.messages import RawReport
from shared.streams import describe_error
from shared.wire import read_entry


def test_data_field_is_validated_from_its_json_bytes() -> None:
    raw = read_entry(RawReport, {b"__data__": b'{"text": "Shelling near Surin.", "x": 1}'})
    assert raw.text == "Shelling near Surin."


def test_flat_fields_are_read_as_strings() -> None:
    raw = read_entry(RawReport, {b"text": b"Troops clashed.", b"source": b"wire"})
    assert (raw.text, raw.source) == ("Troops clashed.", "wire")
    assert read_entry(RawReport, {"text": "Decoded by the client."}).text == (
        "Decoded by the client."
    )


def test_an_empty_data_field_falls_back_to_the_flat_fields() -> None:
    assert read_entry(RawReport, {b"__data__": b"", b"text": b"Flat."}).text == "Flat."


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"__data__": b"not json"}, "invalid message: payload: Invalid JSON"),
        ({b"__data__": b"[1, 2]"}, "invalid message: payload is not a JSON object (got [1, 2])"),
        ({b"__data__": b'{"title": "no text"}'}, "invalid message: text: Field required"),
    ],
)
def test_invalid_entries_say_why(fields: dict[bytes, bytes], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        read_entry(RawReport, fields)
    assert describe_error(caught.value).startswith(reason)


def test_a_flat_field_that_is_not_utf8_is_unreadable() -> None:
    with pytest.raises(UnicodeDecodeError):
        read_entry(RawReport, {b"text": b"\xff\xfe broken"})
