"""Rule sets from entry points and files work like the built-in one."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.classifier import rules as rules_module
from services.classifier.app import build as build_classifier
from services.classifier.classify import find_evidence
from services.classifier.rules import RuleSet, RuleSetError, Screening, load_rule_sets
from shared.settings import Settings
from tests.conftest import running, stream_entries, wait_for
from tests.factories import make_report

CUSTOM = """
name: drills
version: 3
rules:
  - id: escalation.live_fire_drill
    kind: escalation
    weight: 0.9
    severity: 2
    patterns: ["live-fire drills? (near|along) the (border|frontier)"]
"""


def custom_rules() -> RuleSet:
    """An entry-point target: a callable returning a rule set."""
    return RuleSet.model_validate(
        {
            "name": "from-entry-point",
            "version": 1,
            "rules": [
                {
                    "id": "ceasefire.handshake",
                    "kind": "ceasefire",
                    "weight": 0.9,
                    "severity": 2,
                    "patterns": ["shook hands"],
                }
            ],
        }
    )


def unchecked_rules() -> RuleSet:
    """An entry-point target that skips validation, giving a rule a weight above 1."""
    valid = custom_rules()
    rule = valid.rules[0].model_copy(update={"weight": 3.0})
    return valid.model_copy(update={"rules": (rule,)})


@pytest.fixture
def custom_file(tmp_path: Path) -> Path:
    path = tmp_path / "drills.yaml"
    path.write_text(CUSTOM, encoding="utf-8")
    return path


@pytest.fixture
def with_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register `handshake` in the flashpoint.rules group, as an installed plugin would."""
    real = rules_module.entry_points  # type: ignore[attr-defined]

    def patched(*, group: str) -> list[EntryPoint]:
        found = list(real(group=group))
        found.append(EntryPoint("handshake", "tests.test_rule_sets:custom_rules", group))
        return found

    monkeypatch.setattr(rules_module, "entry_points", patched)


class TestLoading:
    def test_builtin_is_an_entry_point(self) -> None:
        """The built-in rule set is loaded through the same entry-point group."""
        (builtin,) = load_rule_sets(["builtin"])
        assert builtin.name == "builtin"

    @pytest.mark.usefixtures("with_entry_point")
    def test_third_party_entry_point(self) -> None:
        """An installed plugin's rule set loads by its entry-point name."""
        (_, plugin) = load_rule_sets(["builtin", "handshake"])
        assert plugin.label == "from-entry-point@1"

    def test_an_unchecked_rule_set_from_an_entry_point_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A plugin's rule set built without validation (a weight above 1) is refused when it
        loads, not when the first report meets it."""
        real = rules_module.entry_points  # type: ignore[attr-defined]

        def patched(*, group: str) -> list[EntryPoint]:
            target = "tests.test_rule_sets:unchecked_rules"
            return [*real(group=group), EntryPoint("unchecked", target, group)]

        monkeypatch.setattr(rules_module, "entry_points", patched)
        with pytest.raises(
            RuleSetError, match=r"'unchecked' gave an invalid rule set: rules\.0\.weight: .* 1"
        ):
            load_rule_sets(["unchecked"])

    def test_file_by_path(self, custom_file: Path) -> None:
        """A YAML file path loads as a rule set."""
        (_, drills) = load_rule_sets(["builtin", str(custom_file)])
        assert drills.label == "drills@3"

    def test_unknown_name_is_refused_naming_what_is_known(self) -> None:
        """A name that is neither a file nor an entry point is refused with the known names."""
        with pytest.raises(RuleSetError, match=r"'nonsense'.*known: builtin"):
            load_rule_sets(["nonsense"])

    def test_same_rule_id_twice_is_refused(self, tmp_path: Path) -> None:
        """Two sets may not define the same rule id; the error names both."""
        clash = tmp_path / "clash.yaml"
        clash.write_text(CUSTOM.replace("escalation.live_fire_drill", "escalation.clash"))
        with pytest.raises(RuleSetError, match=r"escalation\.clash.*builtin@3.*drills@3"):
            load_rule_sets(["builtin", str(clash)])


class TestClassifying:
    async def test_service_uses_configured_rule_sets(
        self, make_settings: Callable[..., Settings], redis: aioredis.Redis, custom_file: Path
    ) -> None:
        """With FLASHPOINT_RULES naming a file, the classifier service applies its rules."""
        settings = make_settings(rules=["builtin", str(custom_file)])
        report = make_report(
            title="", text="The navy held live-fire drills near the border on Friday."
        )
        async with running(build_classifier(settings)):
            await redis.xadd(settings.reports_stream, {"__data__": report.model_dump_json()})
            signals = await wait_for(lambda: stream_entries(redis, settings.signals_stream))
        signal = signals[0]
        assert signal["label"] == "escalation"
        assert signal["classifier"] == "builtin@3+drills@3"
        assert any(e["rule"] == "escalation.live_fire_drill" for e in signal["evidence"])
        assert signal["severity"] == 2


def context_rules(context: list[str], figurative: list[str] | None = None) -> RuleSet:
    """A rule that needs military context, with the given context and figurative patterns."""
    return RuleSet.model_validate(
        {
            "name": "context",
            "version": 1,
            "context": context,
            "figurative": figurative or [],
            "rules": [
                {
                    "id": "escalation.offensive",
                    "kind": "escalation",
                    "weight": 0.9,
                    "severity": 2,
                    "needs_context": True,
                    "patterns": ["offensive"],
                }
            ],
        }
    )


@pytest.mark.parametrize("screening", ["best", "anchors", "none"])
class TestContextAndFigurative:
    """Context and figurative patterns work alike whichever screen picks the patterns."""

    def test_a_rule_needing_context_counts_when_the_set_has_no_context_patterns(
        self, screening: Screening
    ) -> None:
        evidence = find_evidence("A new offensive began.", context_rules([]), screening)
        assert [e.rule for e in evidence] == ["escalation.offensive"]

    def test_a_rule_needing_context_counts_only_in_context(self, screening: Screening) -> None:
        rules = context_rules(["troops?", "army"])
        assert find_evidence("The army began an offensive.", rules, screening)
        assert not find_evidence("The marketing offensive began.", rules, screening)

    def test_figurative_phrases_are_erased_first(self, screening: Screening) -> None:
        rules = context_rules([], figurative=["charm offensive"])
        assert not find_evidence("A charm offensive began.", rules, screening)
        assert find_evidence("A charm offensive, then an offensive.", rules, screening)
