"""Rule sets: YAML files of weighted phrase patterns, validated and compiled at start."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from functools import cached_property
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.classifier.anchors import anchors, leading_anchors, lower_literals, tokens_of
from services.classifier.screen import Screen, screen_of
from shared.messages import Score, Severity, SignalKind
from shared.problems import problems

T = TypeVar("T")


class RuleSetError(ValueError):
    """A rule file that cannot be used, naming the file and what is wrong."""


def _compile(pattern: str) -> re.Pattern[str]:
    """The pattern, to run with :func:`word_matches` on lower-cased text.

    Lower-casing the text once beats IGNORECASE, and leaving the leading word boundary to
    :func:`word_matches` lets the regex engine skip to the pattern's possible first characters;
    together they halve the time patterns take.
    """
    try:
        return re.compile(rf"(?:{lower_literals(pattern)})\b")
    except re.error as error:
        msg = f"pattern {pattern!r} is not a valid regular expression: {error}"
        raise ValueError(msg) from error


RuleMatch = tuple["Rule", int, int]
"""A rule, and the start and end of a phrase it matched."""

_Found = tuple[str, list[RuleMatch], list[re.Pattern[str]]]
"""A text with its figurative phrases erased, the rule matches in it, and the context
patterns worth trying on it."""

Screening = Literal["best", "anchors", "none"]
"""Which patterns run on a text: ``best`` those Hyperscan's one-pass screen reports where it
is installed, else those whose anchor words the text has; ``anchors`` always the latter;
``none`` every pattern."""


def word_matches(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    """Non-overlapping matches of ``pattern`` that begin a word, as ``\\b(?:pattern)`` would."""
    found = list(pattern.finditer(text))
    for match in found:
        if _inside_word(text, match.start()):
            return list(_word_matches(pattern, text))
    return found  # the common case: what finditer found is what the search below finds


def _rule_matches(rules: Iterable[tuple[Rule, re.Pattern[str]]], lowered: str) -> list[RuleMatch]:
    """Every match of each (rule, pattern) in ``lowered``, as :func:`word_matches` finds them."""
    return [
        (rule, *match.span()) for rule, pattern in rules for match in word_matches(pattern, lowered)
    ]


def _inside_word(text: str, start: int) -> bool:
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_")


def _word_matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    position = 0
    while match := pattern.search(text, position):
        start, end = match.span()
        if _inside_word(text, start):
            position = start + 1
            continue
        yield match
        position = end if end > start else start + 1


class Rule(BaseModel):
    """Phrases that, when found, count towards one kind of signal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9_.-]+$")]
    kind: SignalKind
    weight: Score
    severity: Severity
    needs_context: bool = False
    modality: Literal["event", "intent", "threat"] = "event"
    patterns: Annotated[tuple[str, ...], Field(min_length=1)]

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _compile(pattern)
        return patterns

    @cached_property
    def compiled(self) -> tuple[re.Pattern[str], ...]:
        """The patterns, compiled with word boundaries."""
        return tuple(_compile(pattern) for pattern in self.patterns)


class RuleSet(BaseModel):
    """A named, versioned collection of rules with its negation and context cues."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int
    threshold: Score = 0.5
    negation_window: int = Field(4, ge=0, le=20)
    negation_cues: frozenset[str] = Field(
        frozenset(), description="Words that negate a match within negation_window words before it."
    )
    denial_cues: frozenset[str] = Field(
        frozenset(),
        description="Words that negate any match later in the same clause ('denied that').",
    )
    history_cues: frozenset[str] = Field(
        frozenset(), description="Words before a match that make it background, like 'previous'."
    )
    retrospective_cues: frozenset[str] = Field(
        frozenset(),
        description="Words anywhere earlier in a match's sentence that make the whole sentence "
        "look back, like 'sentenced', 'trial' or 'anniversary': background too.",
    )
    history_factor: Score = Field(0.4, description="Weight multiplier for background matches.")
    body_factor: Score = Field(
        1.0,
        description="Weight multiplier for events after the lead (the title and the first "
        "sentence), which tells the news; calls, threats and claims later on keep theirs.",
    )
    intent_cues: frozenset[str] = Field(
        frozenset(),
        description="Words before a match that make it intent (or threat), like 'could'.",
    )
    intent_factor: Score = Field(
        0.6, description="Weight multiplier for matches under an intent cue."
    )
    attribution_cues: frozenset[str] = Field(
        frozenset(),
        description="Words earlier in a match's sentence that make it a claim someone makes "
        "('accused ... of violating', 'complained over air raids'): reported, not witnessed.",
    )
    attribution_factor: Score = Field(
        0.6, description="Weight multiplier for matches under an attribution cue."
    )
    context: tuple[str, ...] = ()
    figurative: tuple[str, ...] = Field(
        (),
        description="Patterns of phrases that look like conflict but are not ('price war', "
        "'trade truce', 'offensive line'): erased from the text before any rule runs.",
    )
    rules: Annotated[tuple[Rule, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                msg = f"rule id {rule.id!r} is used twice"
                raise ValueError(msg)
            seen.add(rule.id)
        return self

    def find(self, lowered: str, screening: Screening = "best") -> tuple[str, list[RuleMatch]]:
        """Every rule match in the lower-cased text, as :func:`word_matches` finds them, and
        the text they were found in: ``lowered`` with its figurative phrases erased.

        Rules that need military context are dropped when the text names nothing military.
        Only the patterns a screen lets through run (see :data:`Screening`); whichever runs,
        the result is the same (tests check it), only slower or faster.
        """
        screen = self._screen if screening == "best" else None
        if screen is not None:
            lowered, found, context = self._screened_matches(lowered, screen)
        else:
            lowered, found, context = self._indexed_matches(lowered, screening != "none")
        needs_context = any(rule.needs_context for rule, _, _ in found)
        if needs_context and self.context and not any(word_matches(p, lowered) for p in context):
            found = [match for match in found if not match[0].needs_context]
        return lowered, found

    def _screened_matches(self, lowered: str, screen: Screen) -> _Found:
        """The figurative phrases erased, the rule matches and the context patterns worth
        trying, running the patterns Hyperscan let through."""
        figurative, context, rules = self._split(screen(lowered))
        if figurative:
            erased = self._erase(lowered, figurative)
            if erased is not lowered:
                lowered = erased
                _, context, rules = self._split(screen(erased))
        return lowered, _rule_matches(rules, lowered), context

    def _indexed_matches(self, lowered: str, prefilter: bool) -> _Found:
        """The same as :meth:`_screened_matches`, running the patterns whose anchors the
        text has (every pattern without the prefilter)."""
        tokens = tokens_of(lowered) if prefilter else []
        words = {word for _, word in tokens}
        if self.figurative:
            erased = self._erase(lowered, self._figurative_index.candidates(words, prefilter))
            if erased is not lowered:
                lowered = erased
                tokens = tokens_of(lowered) if prefilter else []
                words = {word for _, word in tokens}
        found = (
            self._anchored_matches(lowered, tokens)
            if prefilter
            else _rule_matches(self._rule_index.items, lowered)
        )
        return lowered, found, self._context_index.candidates(words, prefilter)

    def _split(
        self, screened: set[int]
    ) -> tuple[list[re.Pattern[str]], list[re.Pattern[str]], list[tuple[Rule, re.Pattern[str]]]]:
        """The figurative, context and rule patterns the screen's numbers stand for (it numbers
        them in that order)."""
        figurative, context = len(self.figurative), len(self.figurative) + len(self.context)
        numbers = sorted(screened)
        return (
            [self._figurative_index.items[n] for n in numbers if n < figurative],
            [
                self._context_index.items[n - figurative]
                for n in numbers
                if figurative <= n < context
            ],
            [self._rule_index.items[n - context] for n in numbers if n >= context],
        )

    def _anchored_matches(self, lowered: str, tokens: Sequence[tuple[int, str]]) -> list[RuleMatch]:
        """The rule matches, running a pattern only when the text has a word beginning with
        one of its anchors; one whose every match starts with an anchor word is only tried
        where such words begin.
        """
        index = self._rule_index
        starts = index.starts(tokens)
        found: list[RuleMatch] = []
        for number in sorted(index.always.union(starts)):
            rule, pattern = index.items[number]
            if number in self._leading:
                end = 0
                for start in starts[number]:
                    if start < end or _inside_word(lowered, start):
                        continue
                    if match := pattern.match(lowered, start):
                        found.append((rule, start, match.end()))
                        end = match.end()
            else:
                found.extend((rule, *match.span()) for match in word_matches(pattern, lowered))
        return found

    @staticmethod
    def _erase(lowered: str, patterns: Iterable[re.Pattern[str]]) -> str:
        """``lowered`` with what ``patterns`` match blanked out, offsets kept (the same string
        when nothing matched)."""
        for pattern in patterns:
            for match in word_matches(pattern, lowered):
                start, end = match.span()
                lowered = lowered[:start] + " " * (end - start) + lowered[end:]
        return lowered

    @cached_property
    def _screen(self) -> Screen | None:
        """Hyperscan's screen over the figurative, context and rule patterns, if installed."""
        return screen_of(
            (*self.figurative, *self.context, *(p for rule in self.rules for p in rule.patterns))
        )

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        """The rules by id."""
        return {rule.id: rule for rule in self.rules}

    @cached_property
    def _rule_index(self) -> _AnchorIndex[tuple[Rule, re.Pattern[str]]]:
        leading = self._leading_anchors
        return _AnchorIndex(
            [(rule, pattern) for rule in self.rules for pattern in rule.compiled],
            [
                leading[number] or anchors(p)
                for number, p in enumerate(p for rule in self.rules for p in rule.patterns)
            ],
        )

    @cached_property
    def _leading_anchors(self) -> list[frozenset[str] | None]:
        return [leading_anchors(p) for rule in self.rules for p in rule.patterns]

    @cached_property
    def _leading(self) -> frozenset[int]:
        """The patterns every match of which starts with one of their anchor words."""
        return frozenset(i for i, found in enumerate(self._leading_anchors) if found)

    @cached_property
    def _context_index(self) -> _AnchorIndex[re.Pattern[str]]:
        return _pattern_index(self.context)

    @cached_property
    def _figurative_index(self) -> _AnchorIndex[re.Pattern[str]]:
        return _pattern_index(self.figurative)

    def warm_up(self) -> None:
        """Build the indexes and compile the screen now rather than on the first report."""
        _ = self._rule_index, self._context_index, self._figurative_index, self._screen

    @field_validator(
        "negation_cues",
        "denial_cues",
        "history_cues",
        "retrospective_cues",
        "intent_cues",
        "attribution_cues",
    )
    @classmethod
    def _lower_case_cues(cls, cues: frozenset[str]) -> frozenset[str]:
        return frozenset(cue.lower() for cue in cues)

    @field_validator("context", "figurative")
    @classmethod
    def _valid_context(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _compile(pattern)
        return patterns

    @property
    def label(self) -> str:
        """``name@version``, recorded on every signal."""
        return f"{self.name}@{self.version}"


def _pattern_index(patterns: Sequence[str]) -> _AnchorIndex[re.Pattern[str]]:
    return _AnchorIndex([_compile(p) for p in patterns], [anchors(p) for p in patterns])


class _AnchorIndex(Generic[T]):
    """Which items (patterns) a text may match, by the words their anchors begin."""

    def __init__(self, items: list[T], anchor_sets: list[frozenset[str] | None]) -> None:
        self.items = items
        self.always = frozenset(i for i, found in enumerate(anchor_sets) if found is None)
        grouped: dict[str, set[int]] = {}
        for number, found in enumerate(anchor_sets):
            for anchor in found or ():
                grouped.setdefault(anchor, set()).add(number)
        self.by_prefix = {prefix: frozenset(ids) for prefix, ids in grouped.items()}
        self.lengths = sorted({len(prefix) for prefix in self.by_prefix})
        self._cache: dict[str, frozenset[int]] = {}

    def candidates(self, words: Collection[str], prefilter: bool = True) -> list[T]:
        """The items whose anchors begin one of ``words``, in their original order (all of
        them without the prefilter)."""
        if not prefilter:
            return list(self.items)
        found = list(map(self._cache.get, words))
        if None in found:
            found = [self.hits(word) for word in words]
        hits = self.always.union(*found)  # type: ignore[arg-type]
        return [self.items[i] for i in sorted(hits)]

    def starts(self, tokens: Sequence[tuple[int, str]]) -> dict[int, list[int]]:
        """For each item some token is an anchor of, the offsets of those tokens, in order."""
        found: dict[int, list[int]] = {}
        for start, word in tokens:
            for number in self.hits(word):
                found.setdefault(number, []).append(start)
        return found

    def hits(self, word: str) -> frozenset[int]:
        """Items ``word`` is an anchor of (memoised: news reuses its words)."""
        cached = self._cache.get(word)
        if cached is None:
            found: set[int] = set()
            for length in self.lengths:
                if length > len(word):
                    break
                found.update(self.by_prefix.get(word[:length], ()))
            cached = frozenset(found)
            if len(self._cache) < 200_000:
                self._cache[word] = cached
        return cached


def load_rule_set(path: Path) -> RuleSet:
    """Read and validate a rule file; errors name the file and the rule."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        msg = f"{path}: cannot read rule file: {error}"
        raise RuleSetError(msg) from error
    try:
        return RuleSet.model_validate(data)
    except ValidationError as error:
        raise RuleSetError(_describe(path, data, error)) from error


def builtin_rule_set() -> RuleSet:
    """The rule set that ships with Flashpoint (entry point ``builtin``)."""
    with resources.as_file(resources.files(__package__) / "rules" / "builtin.yaml") as path:
        return load_rule_set(path)


ENTRY_POINT_GROUP = "flashpoint.rules"


def load_rule_sets(names: Sequence[str]) -> list[RuleSet]:
    """Rule sets by entry-point name (group ``flashpoint.rules``) or YAML file path.

    An entry point names a callable that returns a :class:`RuleSet` or the path of a rule
    file. Rule ids must be unique across all the sets.
    """
    available = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    rule_sets = []
    for name in names:
        if name in available:
            rule_sets.append(_from_entry_point(name, available[name].load))
        elif name.endswith((".yaml", ".yml")):
            rule_sets.append(load_rule_set(Path(name)))
        else:
            known = ", ".join(sorted(available)) or "none"
            msg = f"rule set {name!r} is neither a YAML file nor an entry point (known: {known})"
            raise RuleSetError(msg)
    seen: dict[str, str] = {}
    for rule_set in rule_sets:
        for rule in rule_set.rules:
            if rule.id in seen:
                msg = f"rule id {rule.id!r} is in both {seen[rule.id]} and {rule_set.label}"
                raise RuleSetError(msg)
            seen[rule.id] = rule_set.label
    return rule_sets


def _from_entry_point(name: str, load: Callable[[], Any]) -> RuleSet:
    try:
        provided = load()
        value = provided() if callable(provided) else provided
    except Exception as error:
        msg = f"rule set entry point {name!r} failed to load: {error}"
        raise RuleSetError(msg) from error
    if isinstance(value, RuleSet):  # validated again: it may have been built without checks
        try:
            return RuleSet.model_validate(value.model_dump())
        except ValidationError as error:
            found = "; ".join(problems(error))
            msg = f"rule set entry point {name!r} gave an invalid rule set: {found}"
            raise RuleSetError(msg) from error
    if isinstance(value, (str, Path)):
        return load_rule_set(Path(value))
    msg = f"rule set entry point {name!r} gave {type(value).__name__}, not a RuleSet or a path"
    raise RuleSetError(msg)


def _describe(path: Path, data: object, error: ValidationError) -> str:
    lines = []
    problems = error.errors(include_url=False)
    for problem in problems:
        loc = list(problem["loc"])
        if loc == ["rules"] and problem["type"] == "too_short" and len(problems) > 1:
            continue  # a consequence of a broken rule, reported on its own
        where = ".".join(str(part) for part in loc)
        if len(loc) > 1 and loc[0] == "rules" and isinstance(data, dict):
            with contextlib.suppress(KeyError, IndexError, TypeError):
                where = f"rule {data['rules'][loc[1]]['id']!r}: " + ".".join(map(str, loc[2:]))
        lines.append(f"{path}: {where}: {problem['msg']}")
    return "\n".join(lines)
