"""Lower-casing that keeps offsets, shared by the rules and the figures."""

from __future__ import annotations


def lower_case(text: str) -> str:
    """``text`` in lower case, character for character, so offsets into it hold for ``text``."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(char if len(char.lower()) != 1 else char.lower() for char in text)
