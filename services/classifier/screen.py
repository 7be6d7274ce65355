"""A one-pass screen over many regular expressions, by Hyperscan where it is installed.

Hyperscan, Intel's multi-pattern regular-expression engine (a wheel for x86-64), reads a text
once and reports which of a few hundred patterns occur in it. Python's ``re`` then runs only
those, so every result is still ``re``'s own. Each pattern is handed to Hyperscan loosened:
word boundaries and lookarounds dropped, so it may report a pattern that ``re`` then does not
match, never the reverse.

Hyperscan reads the text's UTF-8 bytes. ASCII characters are matched as ``re`` matches them;
a non-ASCII character is loosened to a run of non-ASCII bytes wherever ``re`` might match one
(``\\w``, ``\\s``, a negated class, ``.``), and a non-ASCII literal is its own bytes. Where
Hyperscan is not installed, the anchor index does the screening.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from services.classifier.anchors import lower_literals, sre_constants, sre_parse

try:
    hyperscan: Any = importlib.import_module("hyperscan")
except ImportError:  # not on this platform: the anchor index does the work alone
    hyperscan = None

Item = tuple[Any, Any]

_C = sre_constants
_CATEGORIES = {
    _C.CATEGORY_DIGIT: "0-9",
    _C.CATEGORY_WORD: "0-9a-zA-Z_",
    # re's \s on a str also matches the ASCII separators \x1c-\x1f
    _C.CATEGORY_SPACE: r"\t\n\x0b\x0c\r\x1c-\x1f ",
}
_NEGATED_CATEGORIES = (_C.CATEGORY_NOT_DIGIT, _C.CATEGORY_NOT_WORD, _C.CATEGORY_NOT_SPACE)
_NON_ASCII = r"\x80-\xff"
# One non-ASCII character, loosened: a run of the bytes UTF-8 writes such characters with.
_NON_ASCII_CHAR = rf"[{_NON_ASCII}]+"
_ANY_CHAR = rf"(?:[\x00-\x7f]|{_NON_ASCII_CHAR})"
_CASE_FLAGS = sre_constants.SRE_FLAG_IGNORECASE | sre_constants.SRE_FLAG_LOCALE
_IGNORED = (_C.AT, _C.ASSERT, _C.ASSERT_NOT)  # dropped: the loosened pattern matches more


class Untranslatable(ValueError):
    """A pattern with a construct the screen cannot loosen (a backreference, say)."""


def available() -> bool:
    """Whether Hyperscan is installed."""
    return hyperscan is not None


def loosened(pattern: str) -> str:
    """``pattern`` (lower-cased literals) in Hyperscan's syntax, matching the UTF-8 bytes of
    a text at least wherever ``re`` matches the text."""
    parsed = sre_parse.parse(lower_literals(pattern))
    if parsed.state.flags & _CASE_FLAGS:
        raise Untranslatable("a case-insensitive pattern")
    return _sequence(list(parsed))


@functools.cache
def screen_of(patterns: tuple[str, ...]) -> Screen | None:
    """The screen of ``patterns``, compiled once per process (about a second for the
    built-in rules); ``None`` where Hyperscan is not installed."""
    return Screen(patterns) if available() else None


class Screen:
    """Which of ``patterns`` may match a text, in one pass; patterns it cannot translate, or
    Hyperscan refuses, are always reported."""

    def __init__(self, patterns: Sequence[str]) -> None:
        if hyperscan is None:
            msg = "Hyperscan is not installed"
            raise RuntimeError(msg)
        translated: dict[int, bytes] = {}
        for number, pattern in enumerate(patterns):
            with contextlib.suppress(Untranslatable):
                translated[number] = loosened(pattern).encode("ascii")  # escapes only
        try:
            self._database = _database(translated)
        except hyperscan.error:  # one Hyperscan refuses (too large, say): it always runs
            translated = {n: p for n, p in translated.items() if _compiles(n, p)}
            self._database = _database(translated)
        self.always = frozenset(range(len(patterns))) - translated.keys()

    def __call__(self, lowered: str) -> set[int]:
        """Numbers of the patterns that may match ``lowered``."""
        found = set(self.always)
        if self._database is not None:
            text = lowered.encode("utf-8", "surrogatepass")
            self._database.scan(text, match_event_handler=_collector(found))
        return found


def _database(expressions: dict[int, bytes]) -> Any:
    if not expressions:
        return None
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=list(expressions.values()),
        ids=list(expressions),
        elements=len(expressions),
        flags=[hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY] * len(expressions),
    )
    return database


def _compiles(number: int, expression: bytes) -> bool:
    try:
        _database({number: expression})
    except hyperscan.error:
        return False
    return True


def _collector(found: set[int]) -> Callable[..., None]:
    def on_match(number: int, start: int, end: int, flags: int, context: object) -> None:
        found.add(number)

    return on_match


def _sequence(items: list[Item]) -> str:
    return "".join(_item(op, av) for op, av in items)


def _item(op: Any, av: Any) -> str:
    if op is _C.LITERAL:
        return _literal(av)
    if op is _C.NOT_LITERAL:
        return f"(?:[^{_literal(av)}{_NON_ASCII}]|{_NON_ASCII_CHAR})" if av < 128 else _ANY_CHAR
    if op is _C.ANY:
        return _ANY_CHAR  # with or without DOTALL
    if op is _C.IN:
        return _class(av)
    if op is _C.SUBPATTERN:
        if (av[1] | av[2]) & _CASE_FLAGS:
            raise Untranslatable("a case-insensitive group")
        return f"(?:{_sequence(list(av[-1]))})"
    if op is _C.BRANCH:
        return "(?:" + "|".join(_sequence(list(branch)) for branch in av[1]) + ")"
    if op in (_C.MAX_REPEAT, _C.MIN_REPEAT):
        low, high, body = av
        bound = f"{{{low},}}" if high is _C.MAXREPEAT else f"{{{low},{high}}}"
        return f"(?:{_sequence(list(body))}){bound}"
    if op in _IGNORED:
        return ""
    raise Untranslatable(str(op))


def _literal(code: int) -> str:
    """One character: its UTF-8 bytes."""
    return "".join(f"\\x{byte:02x}" for byte in chr(code).encode("utf-8", "surrogatepass"))


def _class(items: list[Item]) -> str:
    """A character class: its ASCII members as a byte class, and any non-ASCII character
    when it may match one (loosened: which ones is not told apart)."""
    negate = bool(items) and items[0][0] is _C.NEGATE
    ascii_members = []
    non_ascii = negate
    for op, av in items[1:] if negate else items:
        if op is _C.LITERAL:
            if av < 128:
                ascii_members.append(_literal(av))
            non_ascii |= av >= 128
        elif op is _C.RANGE:
            low, high = av
            if low < 128:
                ascii_members.append(f"{_literal(low)}-{_literal(min(high, 127))}")
            non_ascii |= high >= 128
        elif op is _C.CATEGORY and av in _CATEGORIES:
            ascii_members.append(_CATEGORIES[av])
            non_ascii = True  # re's \d, \w and \s match beyond ASCII too
        elif op is _C.CATEGORY and av in _NEGATED_CATEGORIES:
            if negate:
                raise Untranslatable("a negated category in a negated class")
            ascii_members.append("\\x00-\\x7f")  # loosened to any ASCII character
            non_ascii = True
        else:
            raise Untranslatable(str(op))
    members = "".join(ascii_members)
    choices = []
    if negate or members:
        choices.append(f"[^{members}{_NON_ASCII}]" if negate else f"[{members}]")
    if non_ascii:
        choices.append(_NON_ASCII_CHAR)
    return f"(?:{'|'.join(choices)})"
