"""Anchor words and the Hyperscan screen: the prefilters that decide which patterns run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from services.classifier.anchors import anchors, leading_anchors, tokens_of
from services.classifier.classify import find_evidence
from services.classifier.rules import RuleSet, Screening, builtin_rule_set
from services.supervisor import demo_feed

CORPUS = Path(__file__).parent / "data" / "classifier_corpus.tsv"


class TestAnchors:
    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("clash(es|ed)?", {"clash"}),
            ("(heavy |fierce )?fighting", {"fighting"}),
            ("(violat\\w*|breach\\w*) (of )?(the )?(ceasefire|truce)", {"violat", "breach"}),
            ("(talks|negotiations) (have )?(collapsed|failed)", {"collapsed", "failed"}),
            ("cross-border (attacks?|shelling)", {"border"}),
            ("[a-z]+ fire", {"fire"}),
            ("(disengaged|demobilis\\w*)", {"disengaged", "demobilis"}),
            ("(M23|Houthis?)", {"m23", "houthi"}),
            (
                "((suicide |car )?bomb(er|s)?|explosive device)",
                {"suicide", "car", "bomb", "explosive"},
            ),
        ],
    )
    def test_anchor_sets(self, pattern: str, expected: set[str]) -> None:
        """The anchors are the beginnings of the most selective word every match contains."""
        assert anchors(pattern) == frozenset(expected)

    @pytest.mark.parametrize("pattern", ["\\w+ed", "(a|b)", "[a-z]+ \\w+"])
    def test_patterns_without_anchors_always_run(self, pattern: str) -> None:
        """A pattern with no readable anchor of two letters or more gets None."""
        assert anchors(pattern) is None

    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("(heavy |fierce )?fighting", {"heavy", "fierce", "fighting"}),
            ("(violat\\w*|breach\\w*) (of )?(the )?(ceasefire|truce)", {"violat", "breach"}),
            ("(troops|forces) ([\\w'-]+ ){0,3}withdrew", {"troops", "forces"}),
        ],
    )
    def test_leading_anchors(self, pattern: str, expected: set[str]) -> None:
        """The word beginnings every match starts with: where the pattern need only be tried."""
        assert leading_anchors(pattern) == frozenset(expected)

    @pytest.mark.parametrize("pattern", ["[\\w'-]+ fire", "(the |a )?ceasefire", "\\w+ed"])
    def test_no_leading_anchors_when_a_match_may_start_anywhere(self, pattern: str) -> None:
        """Patterns that may start with any word, or a one-letter one, must be searched for."""
        assert leading_anchors(pattern) is None

    def test_tokens_are_letter_and_digit_runs_with_offsets(self) -> None:
        """Lower-cased text is split into letter and digit runs, each with its offset."""
        assert tokens_of("cease-fire in sa kaeo, 2026!") == [
            (0, "cease"),
            (6, "fire"),
            (11, "in"),
            (14, "sa"),
            (17, "kaeo"),
            (23, "2026"),
        ]


def corpus_texts() -> list[str]:
    with CORPUS.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        texts = [row["text"] for row in rows]
    for line in demo_feed().read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        texts.append(f"{item['title']}\n{item['text']}")
    return texts


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return builtin_rule_set()


@pytest.mark.parametrize("screening", ["anchors", "best"])
def test_screening_never_misses_a_match(rules: RuleSet, screening: Screening) -> None:
    """On the corpus and the demo feed, evidence with either screen equals evidence without."""
    texts = corpus_texts()
    assert len(texts) > 500
    for text in texts:
        assert find_evidence(text, rules, screening) == find_evidence(text, rules, "none"), text
