"""The classifier measured on the project's own labelled corpus: a floor it must not fall below."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.classifier.classify import Classifier
from services.classifier.evaluate import Evaluation, evaluate, read_examples
from services.classifier.gazetteer import builtin_gazetteer
from services.classifier.rules import builtin_rule_set

CORPUS = Path(__file__).parent / "data" / "classifier_corpus.tsv"
MACRO_F1_FLOOR = 0.90
CLASS_F1_FLOOR = 0.88


@pytest.fixture(scope="module")
def result() -> Evaluation:
    classifier = Classifier((builtin_rule_set(),), builtin_gazetteer())
    return evaluate(read_examples(CORPUS), classifier, min_seconds=0.0)


def test_corpus_is_large_and_balanced() -> None:
    """At least 400 examples, each class with at least a fifth of them."""
    examples = read_examples(CORPUS)
    assert len(examples) >= 400
    for label in ("escalation", "ceasefire", "none"):
        assert sum(1 for _, gold in examples if gold == label) >= len(examples) / 5


def test_macro_f1_floor(result: Evaluation) -> None:
    """Macro-F1 on the corpus stays at or above the floor."""
    assert result.macro_f1() >= MACRO_F1_FLOOR


@pytest.mark.parametrize("label", ["escalation", "ceasefire", "none"])
def test_per_class_floor(result: Evaluation, label: str) -> None:
    """No class falls below its F1 floor."""
    assert result.per_class()[label]["f1"] >= CLASS_F1_FLOOR


def test_eval_command_prints_the_json_contract(tmp_path: Path) -> None:
    """`flashpoint eval --json` prints n, macro_f1, per_class, confusion, reports_per_second."""
    sample = tmp_path / "sample.tsv"
    sample.write_text(
        "text\tlabel\n"
        "Thai troops shelled Cambodian positions, killing two soldiers.\tescalation\n"
        "The two armies signed a ceasefire in Kuala Lumpur.\tceasefire\n"
        "Rice exports rose in October.\tnone\n"
        "This row has a label the command skips.\tother\n",
        encoding="utf-8",
    )
    output = subprocess.run(
        [sys.executable, "-m", "services.cli", "eval", str(sample), "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    report = json.loads(output)
    assert set(report) == {"n", "macro_f1", "per_class", "confusion", "reports_per_second"}
    assert report["n"] == 3
    assert report["macro_f1"] == 1.0
    assert report["per_class"]["ceasefire"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 1,
    }
    assert report["confusion"]["escalation"]["escalation"] == 1
    assert report["reports_per_second"] > 0
