"""The rule-based classifier: pure functions from a report to a signal."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from services.classifier.figures import read_figures
from services.classifier.gazetteer import Found, Gazetteer
from services.classifier.rules import Rule, RuleSet, Screening
from services.classifier.text import lower_case
from shared.messages import (
    Evidence,
    Figures,
    Flag,
    Label,
    Modality,
    Place,
    Report,
    Severity,
    Signal,
    SignalKind,
)

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
# A year used as an adjective just before a match: "the 2025 peace accord", "its 1999 truce"
# (not the date of the report's own event: "On 2 April 2022, a truce took effect").
_YEAR_BEFORE = re.compile(
    r"\b(?:the|a|an|its|their|his|her|this|that|of|earlier|previous) (?:19|20)\d\d(?:'s)?"
    r" (?:[a-z-]+ )?$"
    r"|\bin (?:19|20)\d\d,? (?:when|as|after) (?:[a-z-]+ ){0,3}$"
)
_MONTH = "(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
_DATE = rf"(?:in|of) (?:the )?(?:{_MONTH} )?(?:\d{{1,2}},? )?(?:19|20)\d\d\b"
_DATED_AFTER = re.compile(rf"\s+(?:of [a-z'-]+ )?{_DATE}")
_ACCORD_DATED_AFTER = re.compile(rf"\s+(?:signed |agreed |reached )?{_DATE}")
_AGO_AFTER = re.compile(r",?\s+(?:[a-z]+\s+){1,2}ago\b")
_HISTORY_WINDOW = 6  # words of the clause before a match a history cue may stand in
_INTENT_WINDOW = 6  # the same for an intent cue
# "after three weeks of fighting", "following months of clashes": the cause, not the news
_AFTER_PERIOD = re.compile(
    r"\b(?:after|following|since) (?:[a-z0-9,-]+ ){0,3}(?:hours|days|weeks|months|years|decades)"
    r" of (?:[a-z-]+ ){0,4}$"
    r"|\b(?:hours|days|weeks|moments|shortly|soon|just) after (?:the |a |an |it )?$"
    r"|\b(?:months|years|decades) after (?:the |a |an )?(?:[a-z'-]+ ){0,2}$"
    r"|\b(?:years|decades) since\b"
)
_SENTENCE_WINDOW = 150
_HEADLINE_WORDS = 16  # a first sentence shorter than this is taken for a headline
# A full stop ends a sentence after a word of three letters or more, not after "u.s." or "mr.".
# The punctuation comes first and what precedes it is looked behind at, so the engine skips
# straight to punctuation instead of trying a word at every letter (five times faster).
_SENTENCE_END = re.compile(
    r"[.!?](?:(?<=[a-z0-9]{3}.)|(?<=[)\"'\u201d\u2019].)|(?<=\b[a-z]{2}[!?])"
    r"|(?<=\b[a-z]{2}\.)(?<!\b(?:mr|dr|st|no|jr|sr|lt|co|vs|mt|ft)\.))\s"
    r"|\n|; | [|-] "
)
_KINDS: tuple[SignalKind, SignalKind] = ("escalation", "ceasefire")
_MODALITY_RANK: dict[Modality, int] = {
    "event": 4,
    "threat": 3,
    "reported": 2,
    "intent": 1,
    "background": 0,
}


@dataclass(frozen=True)
class _Match:
    rule: Rule
    start: int
    end: int


@dataclass(frozen=True)
class Classifier:
    """Rule sets and a gazetteer; the first rule set's threshold decides what is flagged."""

    rule_sets: tuple[RuleSet, ...]
    gazetteer: Gazetteer

    def __post_init__(self) -> None:
        for rule_set in self.rule_sets:
            rule_set.warm_up()

    @property
    def label(self) -> str:
        """Names and versions of the rule sets, recorded on every signal."""
        return "+".join(rule_set.label for rule_set in self.rule_sets)

    def classify(self, report: Report) -> Signal:
        """Classify one report."""
        return classify(report, self.rule_sets, self.gazetteer)

    def classify_batch(self, reports: Sequence[Report]) -> list[Signal]:
        """Classify several reports, in order."""
        return [classify(report, self.rule_sets, self.gazetteer) for report in reports]


def report_text(report: Report) -> str:
    """The text the classifier reads: the title, a newline, then the body."""
    return f"{report.title}\n{report.text}" if report.title else report.text


def find_evidence(text: str, rules: RuleSet, screening: Screening = "best") -> list[Evidence]:
    """Every phrase that counts, longest first where matches overlap, negated ones dropped.

    ``screening`` chooses which patterns run (:data:`~services.classifier.rules.Screening`);
    the result is the same whichever does.
    """
    lowered, found = rules.find(lower_case(text), screening)
    matches = [_Match(rule, start, end) for rule, start, end in found]
    matches.sort(key=lambda m: (m.start - m.end, -m.rule.weight, m.start))
    kept: list[tuple[_Match, _Before]] = []
    for match in matches:
        if any(match.start < k.end and k.start < match.end for k, _ in kept):
            continue
        before = _Before.of(lowered, match.start)
        if not before.negates(rules):
            kept.append((match, before))
    kept.sort(key=lambda kept_match: kept_match[0].start)
    if not kept:
        return []
    lead = _Lead.of(lowered, rules)
    return [_evidence(text, lowered, match, before, lead, rules) for match, before in kept]


def score(evidence: Sequence[Evidence], kind: SignalKind) -> float:
    """Noisy-OR of the strongest match of each rule of ``kind``.

    Everything reported (claimed by someone) counts once, at its strongest: a complaint about
    a bomb attack is one claim, not two pieces of evidence.
    """
    strongest: dict[str, float] = {}
    for item in evidence:
        if item.kind == kind:
            key = "reported" if item.modality == "reported" else item.rule
            strongest[key] = max(strongest.get(key, 0.0), item.weight)
    miss = 1.0
    for weight in strongest.values():
        miss *= 1.0 - weight
    return round(1.0 - miss, 4)


def classify(report: Report, rules: RuleSet | Sequence[RuleSet], gazetteer: Gazetteer) -> Signal:
    """Classify one report: scores, flags, label, severity, evidence, where, who, figures."""
    rule_sets = (rules,) if isinstance(rules, RuleSet) else tuple(rules)
    text = report_text(report)
    evidence = sorted(
        (item for rule_set in rule_sets for item in find_evidence(text, rule_set)),
        key=lambda item: item.start,
    )
    scores = {kind: score(evidence, kind) for kind in _KINDS}
    threshold = rule_sets[0].threshold
    flags = tuple(
        Flag(kind=kind, score=scores[kind], modality=_modality(evidence, kind))
        for kind in sorted(_KINDS, key=lambda k: -scores[k])
        if scores[kind] >= threshold
    )
    label: Label = flags[0].kind if flags else "none"
    found = gazetteer.find(text) if evidence else Found(places=[], actors=[])
    figures = read_figures(text) if label == "escalation" else Figures()
    countries = _countries(found.places)
    return Signal(
        report=report,
        label=label,
        escalation=scores["escalation"],
        ceasefire=scores["ceasefire"],
        flags=flags,
        severity=severity(label, evidence, figures, rule_sets),
        evidence=tuple(evidence),
        places=tuple(found.places),
        countries=countries,
        actors=tuple(found.actors),
        figures=figures,
        incident_key=incident_key(label, countries, found.places),
        classifier="+".join(rule_set.label for rule_set in rule_sets),
    )


def severity(
    label: Label, evidence: Sequence[Evidence], figures: Figures, rule_sets: Sequence[RuleSet]
) -> Severity:
    """How serious: the gravest rule that counted, raised by deaths, injuries, displacement."""
    if label == "none":
        return Severity.INFO
    level = max(
        (
            _rule(rule_sets, e.rule).severity
            for e in evidence
            if e.kind == label and e.modality != "background"
        ),
        default=Severity.LOW,
    )
    if label == "escalation":
        killed, injured, displaced = (
            figures.killed or 0,
            figures.injured or 0,
            figures.displaced or 0,
        )
        if killed >= 10 or displaced >= 100_000:
            level = Severity.CRITICAL
        elif killed or displaced >= 1_000:
            level = max(level, Severity.HIGH)
        elif injured:
            level = max(level, Severity.MODERATE)
    return Severity(level)


def incident_key(label: Label, countries: Sequence[str], places: Sequence[Place]) -> str | None:
    """``kind:countries:region``; reports about one situation share it."""
    if label == "none":
        return None
    regions = Counter(p.name for p in places if p.admin_level == 1)
    region = regions.most_common(1)[0][0] if regions else "-"
    slug = re.sub(r"[^a-z0-9]+", "-", region.lower()).strip("-") or "-"
    return f"{label}:{'-'.join(countries) or 'xx'}:{slug}"


def _rule(rule_sets: Sequence[RuleSet], rule_id: str) -> Rule:
    for rule_set in rule_sets:
        if (rule := rule_set.by_id.get(rule_id)) is not None:
            return rule
    msg = f"no rule {rule_id!r} in {'+'.join(r.label for r in rule_sets)}"
    raise KeyError(msg)


def _countries(places: Sequence[Place]) -> tuple[str, ...]:
    local = {p.country for p in places if p.admin_level > 0}
    return tuple(sorted(local or {p.country for p in places}))


def _modality(evidence: Sequence[Evidence], kind: SignalKind) -> Modality:
    kinds = [e.modality for e in evidence if e.kind == kind]
    return max(kinds, key=_MODALITY_RANK.__getitem__, default="event")


def _evidence(
    text: str,
    lowered: str,
    match: _Match,
    before: _Before,
    lead: _Lead,
    rules: RuleSet,
) -> Evidence:
    """The evidence a kept match gives, read with the cues before it and the report's lead."""
    rule = match.rule
    weight: float = rule.weight
    modality: Modality = rule.modality
    frame = lead.frame if match.start >= lead.frame_end else None
    if before.is_history(rules) or _past_after(lowered, match) or frame == "background":
        weight, modality = weight * rules.history_factor, "background"
    elif modality == "event" and (
        frame == "reported" or not rules.attribution_cues.isdisjoint(before.words)
    ):
        weight, modality = weight * rules.attribution_factor, "reported"
    elif modality == "event" and not rules.intent_cues.isdisjoint(before.clause[-_INTENT_WINDOW:]):
        weight = weight * rules.intent_factor
        modality = "intent" if rule.kind == "ceasefire" else "threat"
    elif modality == "event" and match.start >= lead.end:
        weight = weight * rules.body_factor
    return Evidence(
        kind=rule.kind,
        rule=rule.id,
        phrase=text[match.start : match.end],
        start=match.start,
        end=match.end,
        weight=round(weight, 4),
        modality=modality,
    )


@dataclass(frozen=True)
class _Lead:
    """Where a report's news is told: the lead, and the frame its opening sets.

    The lead is the first sentence, and the one after it when the first is a title or a short
    headline; events after it weigh ``body_factor``. A report that opens on a trial or an
    anniversary looks back throughout, and one that opens on a complaint reports claims
    throughout: that frame holds for everything after the opening sentence.
    """

    end: int
    frame_end: int
    frame: Modality | None

    @classmethod
    def of(cls, lowered: str, rules: RuleSet) -> _Lead:
        opening = _SENTENCE_END.search(lowered)
        if not opening:
            return cls(len(lowered), len(lowered), None)
        lead = opening
        if opening.group() == "\n" or len(lowered[: opening.start()].split()) < _HEADLINE_WORDS:
            lead = _SENTENCE_END.search(lowered, opening.end()) or opening
        opening_words = _WORD.findall(lowered[: opening.end()])
        frame: Modality | None = None
        if not rules.retrospective_cues.isdisjoint(opening_words):
            frame = "background"
        elif not rules.attribution_cues.isdisjoint(opening_words):
            frame = "reported"
        return cls(lead.end(), opening.end(), frame)


@dataclass(frozen=True)
class _Before:
    """What comes before a match in its sentence (at most 150 characters): the cues' scope."""

    text: str
    words: list[str]
    clause: list[str]
    """The words since the last comma, "as", "but" or "while"."""

    @classmethod
    def of(cls, lowered: str, start: int) -> _Before:
        window = lowered[max(0, start - _SENTENCE_WINDOW) : start]
        cut = 0
        for cut_at in _SENTENCE_END.finditer(window):
            cut = cut_at.end()
        before = window[cut:]
        clause_cut = max(
            before.rfind(","), before.rfind(" as "), before.rfind(" but "), before.rfind(" while ")
        )
        return cls(before, _WORD.findall(before), _WORD.findall(before[clause_cut + 1 :]))

    def negates(self, rules: RuleSet) -> bool:
        """A negation cue just before, or a denial earlier in the clause."""
        window = rules.negation_window
        if window and not rules.negation_cues.isdisjoint(self.words[-window:]):
            return True
        return not rules.denial_cues.isdisjoint(self.clause)

    def is_history(self, rules: RuleSet) -> bool:
        """A history cue or a year just before ("the previous truce", "the 2025 accord"), or
        a retrospective cue earlier in the sentence ("was sentenced for two massacres")."""
        if not rules.history_cues.isdisjoint(self.clause[-_HISTORY_WINDOW:]):
            return True
        if not rules.retrospective_cues.isdisjoint(self.words):
            return True
        return bool(_YEAR_BEFORE.search(self.text) or _AFTER_PERIOD.search(self.text))


def _past_after(lowered: str, match: _Match) -> bool:
    """Dated by what follows: "taken hostage two weeks ago", "killed in the 2020 war", and
    for a ceasefire or accord "the truce signed in 2019" (a violation of it is still news)."""
    after = match.end, match.end + 40
    if _AGO_AFTER.match(lowered, *after) or _DATED_AFTER.match(lowered, *after):
        return True
    return match.rule.kind == "ceasefire" and bool(_ACCORD_DATED_AFTER.match(lowered, *after))
