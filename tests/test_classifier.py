"""Unit tests for the rule-based classifier, its rule sets and its gazetteer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.classifier.classify import classify, score
from services.classifier.gazetteer import (
    Gazetteer,
    GazetteerError,
    builtin_gazetteer,
    read_gazetteer_file,
)
from services.classifier.rules import RuleSet, RuleSetError, builtin_rule_set, load_rule_set
from shared.messages import Evidence, Place, Report, Severity, Signal

NOW = datetime(2026, 11, 20, 5, 15, tzinfo=UTC)
ESCALATION = (
    "Thai artillery shelled Cambodian positions near Preah Vihear; two soldiers were killed "
    "at the border, officials in Si Sa Ket said."
)
CEASEFIRE = "Thailand and Cambodia signed a ceasefire agreement on Monday."


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return builtin_rule_set()


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return builtin_gazetteer()


def report(text: str, title: str = "") -> Report:
    return Report(id="r-1", source="test", text=text, title=title, published_at=NOW, fetched_at=NOW)


def run(text: str, rules: RuleSet, gazetteer: Gazetteer, title: str = "") -> Signal:
    return classify(report(text, title), rules, gazetteer)


class TestClassify:
    def test_clear_escalation(self, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """Shelling and killed soldiers at the border are an escalation of severity >= 3."""
        signal = run(ESCALATION, rules, gazetteer, title="Shelling at Thai-Cambodian border")

        assert signal.label == "escalation"
        assert signal.severity >= Severity.MODERATE
        assert signal.escalation >= rules.threshold

    def test_signed_ceasefire(self, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """A signed ceasefire agreement is labelled ceasefire."""
        signal = run(CEASEFIRE, rules, gazetteer)

        assert signal.label == "ceasefire"
        assert signal.ceasefire >= rules.threshold
        assert signal.escalation == 0.0

    @pytest.mark.parametrize(
        "text",
        [
            "The clash of the titans ended 2-1 at the stadium on Sunday.",
            "A price war among mobile operators cut data prices again.",
            "Floods displaced hundreds of families in the north.",
            "Police said a robbery at a jewellery shop left one person injured.",
        ],
    )
    def test_unrelated_news_is_none(self, text: str, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """Sports, business, weather and crime news get no label and severity INFO."""
        signal = run(text, rules, gazetteer)

        assert signal.label == "none"
        assert signal.severity == Severity.INFO

    def test_violated_ceasefire_is_escalation(self, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """The phrase "violated the ceasefire" counts as escalation, not as a truce mention."""
        text = "Cambodia accused Thai troops of having violated the ceasefire overnight."
        signal = run(text, rules, gazetteer)
        start = text.index("violated")
        span = range(start, start + len("violated the ceasefire"))

        assert signal.label == "escalation"
        assert any(e.kind == "escalation" and e.start == start for e in signal.evidence)
        assert not any(e.kind == "ceasefire" and e.start in span for e in signal.evidence)
        assert signal.ceasefire == 0.0

    def test_negated_phrase_does_not_count(self, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """A phrase preceded closely by a negation cue is dropped."""
        signal = run("The army denied that troops had clashed near the border.", rules, gazetteer)
        plain = run("The army said that troops had clashed near the border.", rules, gazetteer)

        assert not any("clash" in e.phrase for e in signal.evidence)
        assert signal.label == "none"
        assert any("clash" in e.phrase for e in plain.evidence)

    @pytest.mark.parametrize("title", ["", "Shelling at Thai-Cambodian border"])
    def test_evidence_spans_match_text(
        self, title: str, rules: RuleSet, gazetteer: Gazetteer
    ) -> None:
        """Each evidence's start and end index its phrase in the title-and-text."""
        signal = run(ESCALATION, rules, gazetteer, title=title)
        text = f"{title}\n{ESCALATION}" if title else ESCALATION

        assert signal.evidence
        for item in signal.evidence:
            assert text[item.start : item.end] == item.phrase

    def test_places_and_countries(self, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """Provinces are found with their country, and countries are sorted codes."""
        signal = run(ESCALATION, rules, gazetteer)

        assert Place(name="Preah Vihear", country="KH", admin_level=1) in signal.places
        assert any(p.name == "Si Sa Ket" and p.country == "TH" for p in signal.places)
        assert signal.countries == ("KH", "TH")
        assert list(signal.countries) == sorted(signal.countries)

    def test_mixed_report_scores_both(self, rules: RuleSet, gazetteer: Gazetteer) -> None:
        """A report with both fighting and a signed truce scores on both kinds."""
        text = "Fierce fighting and shelling went on at the border after both sides signed a truce."
        signal = run(text, rules, gazetteer)

        assert signal.escalation > 0
        assert signal.ceasefire > 0


def evidence(rule: str, weight: float, start: int = 0) -> Evidence:
    return Evidence(
        kind="escalation", rule=rule, phrase="x", start=start, end=start + 1, weight=weight
    )


class TestScore:
    def test_noisy_or_of_two_rules(self) -> None:
        """Two different rules of weight 0.5 combine to 0.75."""
        assert score([evidence("a", 0.5), evidence("b", 0.5)], "escalation") == 0.75

    def test_same_rule_counts_once(self) -> None:
        """Two matches of the same rule count as one."""
        assert score([evidence("a", 0.5), evidence("a", 0.5, start=5)], "escalation") == 0.5

    def test_other_kind_is_ignored(self) -> None:
        """Evidence of the other kind does not add to the score."""
        assert score([evidence("a", 0.5)], "ceasefire") == 0.0


VALID_RULE = "  - {id: %s, kind: escalation, weight: %s, severity: 3, patterns: ['%s']}\n"


def write_rules(tmp_path: Path, rules: str, extra: str = "") -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(f"name: test\nversion: 1\n{extra}rules:\n{rules}", encoding="utf-8")
    return path


class TestLoadRuleSet:
    def test_valid_file_loads(self, tmp_path: Path) -> None:
        """A well-formed file loads with its name, version and rules."""
        rule_set = load_rule_set(write_rules(tmp_path, VALID_RULE % ("a.b", 0.5, "shell(ed)?")))

        assert rule_set.label == "test@1"
        assert [rule.id for rule in rule_set.rules] == ["a.b"]

    def test_invalid_regex_names_file_and_rule(self, tmp_path: Path) -> None:
        """An invalid regular expression is refused, naming the file and the rule id."""
        path = write_rules(tmp_path, VALID_RULE % ("bad.regex", 0.5, "(unclosed"))

        with pytest.raises(RuleSetError) as info:
            load_rule_set(path)

        assert str(path) in str(info.value)
        assert "'bad.regex'" in str(info.value)
        assert "not a valid regular expression" in str(info.value)

    def test_unknown_key_is_refused(self, tmp_path: Path) -> None:
        """A key the schema does not know is refused rather than ignored."""
        path = write_rules(tmp_path, VALID_RULE % ("a.b", 0.5, "x"), extra="thresold: 0.4\n")

        with pytest.raises(RuleSetError, match="thresold"):
            load_rule_set(path)

    def test_unknown_rule_key_names_rule(self, tmp_path: Path) -> None:
        """An unknown key inside a rule is refused, naming the rule and the key."""
        rule = "  - {id: a.b, kind: escalation, weight: 0.5, severity: 3, patterns: [x], hue: 1}\n"

        with pytest.raises(RuleSetError, match=r"rule 'a\.b': hue"):
            load_rule_set(write_rules(tmp_path, rule))

    def test_weight_above_one_names_rule(self, tmp_path: Path) -> None:
        """A weight above 1 is refused, naming the rule."""
        path = write_rules(tmp_path, VALID_RULE % ("too.heavy", 1.5, "x"))

        with pytest.raises(RuleSetError, match=r"too\.heavy"):
            load_rule_set(path)


class TestGazetteerFile:
    def test_bad_entry_is_refused_naming_file_and_entry(self, tmp_path: Path) -> None:
        """A place with a bad country code is refused; the error names the file and entry."""
        path = tmp_path / "places.yaml"
        path.write_text(
            "version: 1\nplaces:\n  - {name: Nowhere, country: Thailand, admin_level: 1}\n"
        )
        with pytest.raises(GazetteerError, match=r"places\.yaml: places\.0\.country"):
            read_gazetteer_file(path)
