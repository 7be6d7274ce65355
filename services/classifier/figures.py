"""People killed, injured and displaced, read from a report's text. Pure functions.

Vague quantities become lower bounds: "dozens" is 24, "hundreds of thousands" 200,000.
"""

from __future__ import annotations

import re

from services.classifier.text import lower_case
from shared.messages import Figures

_UNITS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "a dozen": 12,
    "dozen": 12,
    "dozens": 24,
    "scores": 40,
    "hundreds": 200,
    "thousands": 2_000,
    "tens of thousands": 20_000,
    "hundreds of thousands": 200_000,
    "millions": 2_000_000,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}

_NUMBER = (
    r"(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s+(?:hundred|thousand|million))?"
    r"|(?:hundreds|tens) of thousands|millions|thousands|hundreds|dozens|scores|a dozen"
    r"|(?:"
    + "|".join(sorted((w for w in _UNITS if " " not in w), key=len, reverse=True))
    + r")(?:\s+(?:hundred|thousand|million))?"
)
_QUALIFIER = r"(?:at least|more than|over|nearly|almost|about|around|some|up to|an estimated)\s+"
_WHO_NOUNS = frozenset(
    [
        "people",
        "persons",
        "civilians",
        "soldiers",
        "troops",
        "villagers",
        "residents",
        "children",
        "women",
        "men",
        "fighters",
        "militants",
        "rebels",
        "police",
        "policemen",
        "officers",
        "marines",
        "sailors",
        "personnel",
        "servicemen",
        "members",
        "workers",
        "families",
        "others",
        "thais",
        "cambodians",
    ]
)
_WHO = rf"(?:(?:\w+[- ]){{0,2}}(?:{'|'.join(sorted(_WHO_NOUNS))}))"
_KILLED = r"(?:killed|killing|dead|died|slain|lost their lives|deaths?)"
_INJURED = r"(?:wounded|wounding|injured|injuring|hurt)"
_DISPLACED = r"(?:displaced|displacing|fled|evacuated|evacuating|forced from their homes|uprooted)"

_VERBS = {
    "killed": re.compile(rf"\b{_KILLED}\b"),
    "injured": re.compile(rf"\b{_INJURED}\b"),
    "displaced": re.compile(rf"\b{_DISPLACED}\b"),
}
# "killing 6 civilians", "displaced hundreds of thousands": the number follows the verb.
_AFTER = re.compile(rf"\s+(?:{_QUALIFIER})?(?P<n>{_NUMBER})\b")
# "two soldiers were wounded", "at least 12 people have been killed": it comes before.
_BEFORE = re.compile(rf"(?P<n>{_NUMBER})\s+{_WHO}\s+(?:\w+\s+){{0,3}}$")
_TOLL = re.compile(rf"\bdeath toll\s+(?:\w+\s+){{0,3}}?(?:{_QUALIFIER})?(?P<n>{_NUMBER})\b")
_WINDOW = 80
_WORD = re.compile(r"\w+")


def parse_number(text: str) -> int | None:
    """The number a phrase like "12", "1,200", "two", "hundreds of thousands" stands for."""
    words = text.lower().replace(",", "").split()
    if not words:
        return None
    phrase = " ".join(words)
    if phrase in _UNITS:
        return _UNITS[phrase]
    scale = _SCALES.get(words[-1], 1)
    head = " ".join(words[:-1]) if scale != 1 else phrase
    try:
        value = float(head)
    except ValueError:
        if head not in _UNITS:
            return None
        value = _UNITS[head]
    return int(value * scale)


def read_figures(text: str) -> Figures:
    """The largest killed, injured and displaced figures the text states."""
    text = lower_case(text)  # the patterns are lower case: faster than ignoring case
    found: dict[str, int] = {}
    for field, verb in _VERBS.items():
        for match in verb.finditer(text):
            numbers = [_AFTER.match(text, match.end()), _number_before(text, match.start())]
            for number in numbers:
                _keep_largest(found, field, number)
    if "toll" in text:
        for number in _TOLL.finditer(text):
            _keep_largest(found, "killed", number)
    return Figures.model_validate(found)


def _number_before(text: str, end: int) -> re.Match[str] | None:
    """The count of people just before a verb: "two soldiers were wounded"."""
    start = max(0, end - _WINDOW)
    # The regex below is slow to fail; the noun it needs must be among the last four words.
    if _WHO_NOUNS.isdisjoint(_WORD.findall(text[start:end])[-4:]):
        return None
    return _BEFORE.search(text, start, end)


def _keep_largest(found: dict[str, int], field: str, match: re.Match[str] | None) -> None:
    value = parse_number(match.group("n")) if match else None
    if value is not None and value < 100_000_000:
        found[field] = max(found.get(field, 0), value)
