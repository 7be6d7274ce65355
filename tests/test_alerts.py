"""Unit tests for how a signal reads as a plain-text alert (services/notifier/formats.py)."""

from __future__ import annotations

from services.notifier.formats import Rendered, render_for
from shared.messages import Actor, Evidence, Figures, Flag, Place, Signal
from tests import factories
from tests.factories import make_report


def render(signal: Signal) -> Rendered:
    """The plain-text alert, as the console and any text channel get it."""
    return render_for("text", signal)


def make_signal(
    *,
    evidence: tuple[Evidence, ...] = (),
    places: tuple[Place, ...] = (),
    estimated: bool = False,
    url: str | None = "https://example.com/news/1",
) -> Signal:
    """An escalation signal of severity HIGH about a titled report."""
    report = make_report(url=url, published_estimated=estimated)
    return factories.make_signal(report, evidence=evidence, places=places)


def shelling(phrase: str, start: int) -> Evidence:
    return Evidence(
        kind="escalation",
        rule="escalation.heavy_weapons",
        phrase=phrase,
        start=start,
        end=start + len(phrase),
        weight=0.7,
    )


class TestRenderTitle:
    def test_names_label_severity_and_report_title(self) -> None:
        """The title names the label in upper case, the severity and the report's title."""
        title = render(make_signal()).title

        assert "ESCALATION" in title
        assert "high" in title.lower()
        assert "4/5" in title
        assert title.endswith("Shelling near Preah Vihear")


class TestRenderBody:
    def test_lists_places_with_country(self) -> None:
        """Places are listed as ``Name (CC)``."""
        places = (
            Place(name="Preah Vihear", country="KH", admin_level=1),
            Place(name="Si Sa Ket", country="TH", admin_level=1),
        )

        body = render(make_signal(places=places)).body

        assert "Preah Vihear (KH), Si Sa Ket (TH)" in body

    def test_no_places_line_without_places(self) -> None:
        """Without places, no places line is written."""
        assert "Places:" not in render(make_signal()).body

    def test_evidence_phrases_are_distinct(self) -> None:
        """A phrase found twice, in any case, is listed once."""
        evidence = (shelling("Shelling", 0), shelling("shelled", 20), shelling("shelling", 40))

        body = render(make_signal(evidence=evidence)).body

        assert body.lower().count('"shelling"') == 1
        assert '"shelled"' in body

    def test_evidence_of_other_kind_is_left_out(self) -> None:
        """Only evidence of the signal's own label is listed."""
        truce = Evidence(
            kind="ceasefire", rule="ceasefire.mention", phrase="truce", start=0, end=5, weight=0.2
        )

        body = render(make_signal(evidence=(truce, shelling("shelled", 10)))).body

        assert '"shelled"' in body
        assert '"truce"' not in body

    def test_lists_url_and_report_id(self) -> None:
        """The body carries the report's URL and id."""
        body = render(make_signal()).body

        assert "https://example.com/news/1" in body.splitlines()
        assert "r-0123456789abcdef0123" in body

    def test_published_time_is_shown(self) -> None:
        """The publication time is shown in UTC."""
        assert "2026-11-20 05:15 UTC" in render(make_signal()).body

    def test_estimated_time_is_marked(self) -> None:
        """An estimated publication time is marked as such."""
        assert "(estimated)" in render(make_signal(estimated=True)).body

    def test_known_time_is_not_marked(self) -> None:
        """A known publication time is not marked as estimated."""
        assert "(estimated)" not in render(make_signal(estimated=False)).body


class TestRenderFacts:
    def test_figures_actors_and_second_flag_are_shown(self) -> None:
        """Casualty figures, actors and a second flagged kind appear in the body."""
        signal = factories.make_signal(
            flags=(
                Flag(kind="escalation", score=0.9, modality="event"),
                Flag(kind="ceasefire", score=0.5, modality="intent"),
            ),
            figures=Figures(killed=6, displaced=200_000),
            actors=(Actor(name="ASEAN", kind="organisation"),),
        )
        body = render(signal).body

        assert "Also flagged: ceasefire (intent)" in body
        assert "killed at least 6" in body
        assert "displaced at least 200,000" in body
        assert "injured" not in body
        assert "Actors: ASEAN" in body

    def test_no_figures_no_line(self) -> None:
        """Without figures, actors or a second flag, those lines are absent."""
        body = render(make_signal()).body

        assert "People:" not in body
        assert "Actors:" not in body
        assert "Also flagged" not in body
