"""Realistic raw reports for the benchmark: escalation, ceasefire and unrelated news.

Reports are put together from sentence pools with varied places, numbers and outlets, so most
are distinct stories; a few come out as near-duplicates, as on a real wire, and ingest drops
them like any other duplicate.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

PLACES = [
    ("Sa Kaeo", "Thai"),
    ("Surin", "Thai"),
    ("Si Sa Ket", "Thai"),
    ("Oddar Meanchey", "Cambodian"),
    ("Banteay Meanchey", "Cambodian"),
    ("Preah Vihear", "Cambodian"),
    ("El Fasher", "Sudanese"),
    ("Kharkiv", "Ukrainian"),
    ("Goma", "Congolese"),
    ("Sittwe", "Myanmar"),
    ("Tigray", "Ethiopian"),
    ("Rafah", "Palestinian"),
]
OUTLETS = ["wire-a", "wire-b", "daily-c", "radio-d", "post-e", "herald-f", "monitor-g"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

ESCALATION = [
    "Artillery shelling hit villages near {place} on {day}, killing {n} civilians.",
    "Troops clashed with {adj} forces along the border near {place}.",
    "At least {n} soldiers were wounded when rockets struck positions outside {place}.",
    "An air strike on a depot near {place} set off explosions heard for miles.",
    "{adj} officials said {m} people fled their homes as fighting spread around {place}.",
    "The army mobilised reserve units and moved tanks towards {place}.",
    "The defence ministry threatened to retaliate after drones attacked {place}.",
    "Gunfire was exchanged across the frontier at {place} for a second night.",
    "Hospitals in {place} reported {n} dead and dozens injured after the bombardment.",
    "The truce collapsed on {day} as mortar fire resumed near {place}.",
]
CEASEFIRE = [
    "Both sides signed a ceasefire agreement in {place} on {day}.",
    "Negotiators announced peace talks would resume next week, mediated near {place}.",
    "{adj} troops began withdrawing from positions around {place} under the truce.",
    "Commanders agreed to a truce covering the district of {place}.",
    "The foreign ministers welcomed the peace accord and pledged to monitor {place}.",
    "Observers confirmed the ceasefire was holding for a {k}th day around {place}.",
    "Delegations met in {place} and agreed on a timetable for the withdrawal of heavy weapons.",
]
UNRELATED = [
    "The central bank held interest rates steady on {day}, citing inflation of {k} percent.",
    "Heavy rain flooded roads in {place}, and {n} schools were closed.",
    "The football club from {place} won the derby in a clash of the titans.",
    "A price war between airlines cut fares to {place} by {k} percent.",
    "Health officials in {place} opened {n} new vaccination centres.",
    "A tech company opened an office in {place}, creating {m} jobs.",
    "Police in {place} arrested {n} suspects after a string of burglaries.",
    "Farmers near {place} expect a record rice harvest after a mild season.",
]
DETAILS = [
    "Local officials urged residents to stay indoors.",
    "Aid agencies said they were preparing emergency supplies.",
    "Reporters at the scene could not independently verify the figures.",
    "The statement was broadcast on national television in the evening.",
    "Markets in the capital reacted calmly to the news.",
    "Diplomats in the region are watching the situation closely.",
    "Residents described a tense night with little sleep.",
    "A spokesperson declined to give further details.",
    "Photographs shared online showed damaged buildings and blocked roads.",
    "The government said it would publish a full account within days.",
]
KINDS = {"escalation": ESCALATION, "ceasefire": CEASEFIRE, "none": UNRELATED}
MIX = (("escalation", 0.4), ("ceasefire", 0.25), ("none", 0.35))


@dataclass(frozen=True)
class Workload:
    """A reproducible stream of raw reports (JSON objects for the inbox)."""

    seed: int = 2026

    def reports(self, count: int) -> list[dict[str, Any]]:
        """``count`` raw reports."""
        return list(self.iterate(count))

    def iterate(self, count: int) -> Iterator[dict[str, Any]]:
        """``count`` raw reports, one at a time."""
        rng = random.Random(self.seed)
        kinds = [kind for kind, _ in MIX]
        weights = [weight for _, weight in MIX]
        for n in range(count):
            kind = rng.choices(kinds, weights)[0]
            yield self._report(rng, n, kind)

    def _report(self, rng: random.Random, n: int, kind: str) -> dict[str, Any]:
        place, adj = rng.choice(PLACES)
        slots = {
            "place": place,
            "adj": adj,
            "day": rng.choice(DAYS),
            "n": rng.randint(2, 60),
            "m": rng.randint(100, 90_000),
            "k": rng.randint(2, 30),
        }
        sentences = rng.sample(KINDS[kind], 2) + rng.sample(DETAILS, 2)
        if kind != "none" and rng.random() < 0.5:
            sentences.insert(1, rng.choice(UNRELATED))
        text = " ".join(s.format(**slots) for s in sentences)
        outlet = rng.choice(OUTLETS)
        return {
            "source": outlet,
            "url": f"https://{outlet}.example/news/{n}?utm_source=bench",
            "title": sentences[0].format(**slots)[:120],
            "text": text,
        }
