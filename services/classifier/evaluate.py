"""Measures the classifier on a labelled TSV file: precision, recall, F1, confusion."""

from __future__ import annotations

import csv
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from services.classifier.classify import Classifier
from shared.messages import Label, Report

LABELS: tuple[Label, ...] = get_args(Label)


@dataclass
class Evaluation:
    """Outcome of classifying every labelled row."""

    n: int = 0
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0
    """Seconds one pass through all the examples takes (the median pass)."""

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support of each label."""
        result: dict[str, dict[str, float]] = {}
        for label in LABELS:
            tp = self.confusion[(label, label)]
            predicted = sum(v for (_, p), v in self.confusion.items() if p == label)
            support = sum(v for (g, _), v in self.confusion.items() if g == label)
            precision = tp / predicted if predicted else 0.0
            recall = tp / support if support else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            result[label] = {
                "precision": round(precision, 4),
                "recall": round(recall, 4),
                "f1": round(f1, 4),
                "support": support,
            }
        return result

    def macro_f1(self) -> float:
        """Mean F1 over the labels."""
        return round(sum(c["f1"] for c in self.per_class().values()) / len(LABELS), 4)

    def reports_per_second(self) -> float:
        """Classification speed over the whole file."""
        return round(self.n / self.seconds, 1) if self.seconds else 0.0


def read_examples(path: Path) -> list[tuple[str, Label]]:
    """Rows of ``path`` with a known label; a header must name ``text`` and ``label``."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
            msg = f"{path}: the header must have 'text' and 'label' columns"
            raise ValueError(msg)
        return [
            (row["text"], row["label"]) for row in reader if row["label"] in LABELS and row["text"]
        ]


def evaluate(
    examples: list[tuple[str, Label]], classifier: Classifier, min_seconds: float = 1.0
) -> Evaluation:
    """Classify every example and tally gold label against prediction.

    Speed is the median of repeated timed passes through the examples (at least three, and
    at least ``min_seconds`` in all) after one untimed pass: a small file takes milliseconds,
    too short to time once. Only classification is timed, not building reports from rows.
    """
    now = datetime.now(UTC)
    reports = [
        Report(id=f"eval-{n}", source="eval", text=text, published_at=now, fetched_at=now)
        for n, (text, _) in enumerate(examples)
    ]
    signals = classifier.classify_batch(reports)  # also warms the word caches
    pass_seconds: list[float] = []
    while reports and (sum(pass_seconds) < min_seconds or len(pass_seconds) < 3):
        started = time.perf_counter()
        classifier.classify_batch(reports)
        pass_seconds.append(time.perf_counter() - started)
    result = Evaluation(n=len(examples), seconds=statistics.median(pass_seconds or [0.0]))
    for (_, gold), signal in zip(examples, signals, strict=True):
        result.confusion[(gold, signal.label)] += 1
    return result
