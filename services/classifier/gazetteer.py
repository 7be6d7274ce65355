"""Places, countries and actors named in a text, from ISO 3166 and a bundled gazetteer.

Names are matched case-sensitively at capitalised words, longest name first, by looking up
each capitalised word among the first words of known names: one pass over the text, no
regular expression with thousands of alternatives.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import pycountry
import yaml
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from shared.messages import Actor, ActorKind, Place
from shared.problems import problems

_CAPITALISED = re.compile("(?<![\\w.])[A-Z][\\w'\u2019.-]*")


@dataclass(frozen=True)
class Mention:
    """A known name found in a text."""

    start: int
    end: int
    place: Place | None = None
    actor: Actor | None = None


@dataclass(frozen=True)
class Found:
    """Everything the gazetteer recognised in one text."""

    places: list[Place]
    actors: list[Actor]


@dataclass
class Gazetteer:
    """Known names, each standing for a place, an actor, or both."""

    places: dict[str, Place] = field(default_factory=dict)
    actors: dict[str, Actor] = field(default_factory=dict)
    armed_forces_words: tuple[str, ...] = ()
    government_words: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._by_first_word: dict[str, list[str]] = defaultdict(list)
        for name in {*self.places, *self.actors}:
            self._by_first_word[name.split()[0].rstrip(".")].append(name)
        for names in self._by_first_word.values():
            names.sort(key=len, reverse=True)
        words = sorted((*self.armed_forces_words, *self.government_words), key=len, reverse=True)
        self._follower = re.compile(
            r"\s+(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE
        )
        self._forces = {w.lower() for w in self.armed_forces_words}

    def mentions(self, text: str) -> list[Mention]:
        """Every known name in ``text``, in order, longest match at each position."""
        found: list[Mention] = []
        end_of_last = 0
        for word in _CAPITALISED.finditer(text):
            start = word.start()
            if start < end_of_last:
                continue
            for name in self._by_first_word.get(word.group().rstrip("."), ()):
                end = start + len(name)
                if text.startswith(name, start) and not text[end : end + 1].isalnum():
                    found.append(Mention(start, end, self.places.get(name), self.actors.get(name)))
                    end_of_last = end
                    break
        return found

    def find(self, text: str) -> Found:
        """Distinct places and actors, in order of first mention."""
        places: dict[Place, None] = {}
        actors: dict[Actor, None] = {}
        for mention in self.mentions(text):
            if mention.place is not None:
                places.setdefault(mention.place, None)
            if mention.actor is not None:
                actors.setdefault(mention.actor, None)
            elif mention.place is not None and mention.place.admin_level == 0:
                actor = self._country_actor(text, mention.end, mention.place)
                if actor is not None:
                    actors.setdefault(actor, None)
        return Found(places=list(places), actors=list(actors))

    def _country_actor(self, text: str, end: int, country: Place) -> Actor | None:
        follower = self._follower.match(text, end)
        if follower is None:
            return None
        word = follower.group().strip().lower()
        kind: ActorKind = "armed_forces" if word in self._forces else "government"
        label = "armed forces" if kind == "armed_forces" else "government"
        return Actor(name=f"{country.name} {label}", kind=kind, country=country.country)


def _country_names() -> dict[str, Place]:
    names: dict[str, Place] = {}
    for country in pycountry.countries:
        canonical = getattr(country, "common_name", None) or country.name
        place = Place(name=canonical, country=country.alpha_2, admin_level=0)
        for name in {country.name, canonical}:
            if "," not in name and "(" not in name:
                names[name] = place
    return names


class _PlaceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    admin_level: Literal[1, 2]
    aliases: list[str] = []


class _OrganisationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ActorKind
    aliases: list[str]
    country: str | None = None


class GazetteerFile(BaseModel):
    """The gazetteer's YAML format, validated when it is loaded."""

    model_config = ConfigDict(extra="forbid")

    version: int
    countries: dict[str, list[str]] = {}
    organisations: dict[str, _OrganisationEntry] = {}
    armed_forces_words: list[str] = []
    government_words: list[str] = []
    government_names: dict[str, list[str]] = {}
    places: list[_PlaceEntry] = []


class GazetteerError(ValueError):
    """A gazetteer file that cannot be used, naming the file and the entry."""


def read_gazetteer_file(path: Path) -> dict[str, Any]:
    """Read and validate a gazetteer YAML file; errors name the file and the entry."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        GazetteerFile.model_validate(data)
    except (OSError, yaml.YAMLError) as error:
        msg = f"{path}: cannot read gazetteer: {error}"
        raise GazetteerError(msg) from error
    except ValidationError as error:
        msg = f"{path}: {'; '.join(problems(error))}"
        raise GazetteerError(msg) from error
    result: dict[str, Any] = data
    return result


def load_gazetteer(data: dict[str, Any]) -> Gazetteer:
    """A gazetteer from the bundled format: countries, organisations, places, actor words."""
    places = _country_names()
    for code, aliases in data.get("countries", {}).items():
        country = Place(name=aliases[0], country=code, admin_level=0)
        for alias in {*aliases, *(n for n, p in places.items() if p.country == code)}:
            places[alias] = country
    for entry in data.get("places", []):
        place = Place(
            name=entry["name"], country=entry["country"], admin_level=entry["admin_level"]
        )
        for alias in [entry["name"], *entry.get("aliases", [])]:
            places[alias] = place
    actors: dict[str, Actor] = {}
    for name, entry in data.get("organisations", {}).items():
        actor = Actor(name=name, kind=entry["kind"], country=entry.get("country"))
        for alias in entry["aliases"]:
            actors[alias] = actor
    country_names = {p.country: p.name for p in places.values() if p.admin_level == 0}
    for code, aliases in data.get("government_names", {}).items():
        actor = Actor(name=f"{country_names[code]} government", kind="government", country=code)
        for alias in aliases:
            actors[alias] = actor
    return Gazetteer(
        places=places,
        actors=actors,
        armed_forces_words=tuple(data.get("armed_forces_words", ())),
        government_words=tuple(data.get("government_words", ())),
    )


@cache
def builtin_gazetteer() -> Gazetteer:
    """Countries worldwide plus the bundled provinces, towns, demonyms and actors."""
    with resources.as_file(resources.files(__package__) / "rules" / "gazetteer.yaml") as path:
        return load_gazetteer(read_gazetteer_file(path))
