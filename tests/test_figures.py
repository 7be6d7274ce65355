"""People killed, injured and displaced, read from text."""

from __future__ import annotations

import pytest

from services.classifier.figures import parse_number, read_figures


class TestParseNumber:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("6", 6),
            ("1,200", 1200),
            ("two", 2),
            ("a dozen", 12),
            ("dozens", 24),
            ("hundreds", 200),
            ("thousands", 2000),
            ("hundreds of thousands", 200_000),
            ("tens of thousands", 20_000),
            ("3 million", 3_000_000),
            ("1.5 million", 1_500_000),
            ("five hundred", 500),
        ],
    )
    def test_numbers_and_vague_quantities(self, text: str, value: int) -> None:
        """Digits, words and vague quantities become numbers (vague ones as lower bounds)."""
        assert parse_number(text) == value

    def test_not_a_number(self) -> None:
        """A word that is not a quantity gives None."""
        assert parse_number("several") is None


class TestReadFigures:
    @pytest.mark.parametrize(
        ("text", "killed", "injured", "displaced"),
        [
            ("Shelling killed 6 civilians and two soldiers were wounded.", 6, 2, None),
            ("Fresh clashes have displaced hundreds of thousands.", None, None, 200_000),
            ("At least 12 people have been killed in the strikes.", 12, None, None),
            ("The death toll rose to 1,200 on Sunday.", 1200, None, None),
            ("More than 120,000 people have been displaced in Buri Ram.", None, None, 120_000),
            ("An air strike killed at least 17 people, including children.", 17, None, None),
        ],
    )
    def test_figures(
        self, text: str, killed: int | None, injured: int | None, displaced: int | None
    ) -> None:
        """Killed, injured and displaced figures are read in either word order."""
        figures = read_figures(text)
        assert (figures.killed, figures.injured, figures.displaced) == (killed, injured, displaced)

    def test_largest_figure_wins(self) -> None:
        """When a text gives several figures for one count, the largest is kept."""
        assert read_figures("Two were killed on Monday; by Friday 40 people had died.").killed == 40

    def test_years_are_not_casualties(self) -> None:
        """A year next to an accord is not a count of anything."""
        assert read_figures("Under the 2025 peace accord, both armies withdrew.") == read_figures(
            ""
        )
