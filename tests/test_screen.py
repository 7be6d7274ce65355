"""The Hyperscan screen: patterns loosened for it, and what it lets through."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from services.classifier.rules import RuleSet, builtin_rule_set, word_matches
from services.classifier.screen import Screen, Untranslatable, available, loosened

pytestmark = pytest.mark.skipif(not available(), reason="Hyperscan is not installed here")

PATTERNS = [
    r"(shell(ed|ing|s)|artillery (fire|barrage))",
    r"(?<!no )truce\b(?! talks)",
    r"(ceasefire|truce) ([\w'-]+ ){0,4}(collapsed|broke down)",
    r"hopes?[\"'\u201d]?,? (for )?peace",
    r"caf\u00e9 bomb(ing)?",
    r"[^\W\d]+ clash(es)?",
    r"a.b",
    r"peace\s+talks",
    r"truce[^a-z]{2}",
]


class TestLoosened:
    def test_drops_boundaries_and_lookarounds(self) -> None:
        assert "(?<" not in loosened(PATTERNS[1])
        assert "(?!" not in loosened(PATTERNS[1])
        assert "\\b" not in loosened(PATTERNS[1])

    def test_a_non_ascii_character_is_its_utf8_bytes(self) -> None:
        assert loosened("caf\u00e9") == r"\x63\x61\x66\xc3\xa9"

    def test_classes_take_any_non_ascii_character_for_their_non_ascii_members(self) -> None:
        assert loosened("[\"'\u201d]") == r"(?:[\x22\x27]|[\x80-\xff]+)"

    @pytest.mark.parametrize("pattern", [r"(a)\1", r"(?i)truce", r"[^\W\S]"])
    def test_what_it_cannot_loosen_is_refused(self, pattern: str) -> None:
        with pytest.raises(Untranslatable):
            loosened(pattern)


WORDS = [
    "truce",
    "no",
    "ceasefire",
    "collapsed",
    "broke",
    "down",
    "shelling",
    "shelled",
    "artillery",
    "fire",
    "hopes",
    "hope",
    "for",
    "peace",
    "clash",
    "clashes",
    "a",
    "b",
    "x",
    "'",
    '"',
    ",",
    "-",
    "\n",
    "\x1c",
    "the",
    "talks",
    "notruce",
    "caf\u00e9",
    "\u201c",
    "\u201d",
    "\u00a0",
    "\u00e9",
    "na\u00efve",
]


@pytest.fixture(scope="module")
def screen() -> Screen:
    """The patterns above and a backreference; it cannot translate 5 (``[^\\W\\d]``) or 9."""
    return Screen([*PATTERNS, r"(a)\1"])


class TestScreen:
    def test_reports_the_patterns_that_occur(self, screen: Screen) -> None:
        assert screen("the truce collapsed after shelling") == {0, 1, 2, 5, 9}

    def test_reports_a_pattern_its_boundaries_would_have_refused(self, screen: Screen) -> None:
        """Loosened, "truce" occurs in "notruce": the screen may let through what re refuses."""
        assert screen("notruce talks") == {1, 5, 9}

    def test_a_pattern_it_cannot_translate_is_always_reported(self, screen: Screen) -> None:
        assert screen.always == {5, 9}
        assert screen("nothing here") == {5, 9}

    def test_a_pattern_hyperscan_refuses_is_always_reported(self) -> None:
        refused = Screen(["truce", "a{40000}"])  # "Bounded repeat is too large."
        assert refused.always == {1}
        assert refused("the truce held") == {0, 1}

    def test_with_nothing_to_compile_reports_every_pattern(self) -> None:
        assert Screen([r"(a)\1"])("x") == {0}

    def test_reads_non_ascii_text(self, screen: Screen) -> None:
        assert screen("shelling: caf\u00e9 bombing, \u201ctruce\u201d\u00a0") == {0, 1, 4, 5, 8, 9}

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from(WORDS),
            max_size=14,
        ).map(" ".join)
    )
    @example("peace \x1c talks")  # re's \s on a str matches the separators \x1c-\x1f
    @example("peace\u00a0talks")  # and non-ASCII spaces
    @example("caf\u00e9 bombing")
    def test_never_misses_what_re_finds(self, screen: Screen, text: str) -> None:
        found = screen(text)
        for number, pattern in enumerate(PATTERNS):
            if word_matches(re.compile(rf"(?:{pattern})\b"), text):
                assert number in found, (pattern, text)


def test_the_builtin_rules_translate_entirely() -> None:
    """Every built-in pattern is screened: none has to run on every text."""
    rules: RuleSet = builtin_rule_set()
    rules.warm_up()
    screen = rules._screen
    assert screen is not None
    assert screen.always == frozenset()
