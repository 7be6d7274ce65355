"""Anchor words of a pattern: word beginnings one of which every match must contain.

The classifier runs a pattern only on texts that have one of its anchors, found by looking the
text's words up in a dictionary instead of running every regular expression on every text.
Anchors are read from the pattern itself, so rule authors write plain regular expressions.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# The standard library's own regular-expression parser (public as the deprecated sre_parse).
sre_parse: Any = importlib.import_module("re._parser")
sre_constants: Any = importlib.import_module("re._constants")

_LITERAL = sre_constants.LITERAL
_SUBPATTERN = sre_constants.SUBPATTERN
_BRANCH = sre_constants.BRANCH
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)
_AT = sre_constants.AT
_MIN_ANCHOR = 2

Item = tuple[Any, Any]


def anchors(pattern: str) -> frozenset[str] | None:
    """Lower-case word beginnings one of which every match of ``pattern`` contains.

    ``None`` when no such set can be read from the pattern: it must then always run.
    """
    items = list(sre_parse.parse(lower_literals(pattern)))
    best: frozenset[str] | None = None
    for index, item in enumerate(items):
        if not _mandatory(item) or not _starts_word(items, index):
            continue
        found = _prefixes(items[index:] if item[0] is _LITERAL else [item])
        if found and (best is None or min(map(len, found)) > min(map(len, best))):
            best = found
    return best


def leading_anchors(pattern: str) -> frozenset[str] | None:
    """Lower-case word beginnings one of which every match of ``pattern`` starts with.

    ``None`` when no such set can be read: the pattern must then be searched for, not just
    tried where its anchor words begin.
    """
    return _prefixes(list(sre_parse.parse(lower_literals(pattern))))


def _mandatory(item: Item) -> bool:
    op, av = item
    if op in _REPEATS:
        return bool(av[0] >= 1)
    return op is not _AT


def _starts_word(items: list[Item], index: int) -> bool:
    """Whether ``items[index]`` begins at a word start in every match."""
    previous = [item for item in items[:index] if item[0] is not _AT]
    if not previous:
        return True
    return _ends_with_separator(previous[-1])


def _ends_with_separator(item: Item) -> bool:
    op, av = item
    if op is _LITERAL:
        return not chr(av).isalnum()
    if op is _SUBPATTERN:
        return bool(av[-1]) and _ends_with_separator(list(av[-1])[-1])
    if op is _BRANCH:
        return all(branch and _ends_with_separator(list(branch)[-1]) for branch in av[1])
    if op in _REPEATS:
        body = list(av[2])
        return bool(body) and _ends_with_separator(body[-1])
    return False


def _prefixes(sequence: list[Item]) -> frozenset[str] | None:
    """The word beginnings (letters, at least two) a match of ``sequence`` starts with."""
    found = _beginnings(sequence)
    if not found or any(len(prefix) < _MIN_ANCHOR for prefix in found):
        return None
    return frozenset(found)


def _beginnings(sequence: list[Item]) -> set[str] | None:
    if not sequence:
        return None
    op, av = sequence[0]
    if op is _LITERAL:
        letters = ""
        for item_op, item_av in sequence:
            if item_op is not _LITERAL or not chr(item_av).isalnum():
                break
            letters += chr(item_av)
        if not letters:
            return None
        rest = sequence[len(letters) :]
        # The parser factors common prefixes out ("d(?:isengaged|emobilis)"): read on into them.
        if rest and rest[0][0] in (_SUBPATTERN, _BRANCH):
            following = _beginnings(rest)
            if following:
                return {letters + more for more in following}
        return {letters}
    if op is _SUBPATTERN:
        return _beginnings(list(av[-1]))
    if op is _BRANCH:
        result: set[str] = set()
        for branch in av[1]:
            found = _beginnings(list(branch))
            if not found:
                return None
            result |= found
        return result
    if op in _REPEATS and av[0] >= 1:
        return _beginnings(list(av[2]))
    if op in _REPEATS:  # optional: the match begins either inside it or after it
        inside, after = _beginnings(list(av[2])), _beginnings(sequence[1:])
        return inside | after if inside and after else None
    return None


def tokens_of(lowered: str) -> list[tuple[int, str]]:
    """The words of lower-cased ``lowered`` with the offset each begins at."""
    return [(match.start(), match.group()) for match in _WORDS.finditer(lowered)]


_WORDS = re.compile(r"[a-z0-9]+")


def lower_literals(pattern: str) -> str:
    """``pattern`` with its literal letters in lower case; escapes such as ``\\W`` are kept."""
    lowered = []
    escaped = False
    for char in pattern:
        lowered.append(char if escaped else char.lower())
        escaped = not escaped and char == "\\"
    return "".join(lowered)
