"""Where prose names the first-layer strategies, it names exactly those of the one strategy table."""

from __future__ import annotations

import re
from pathlib import Path

from slicewise.config import FIRST_LAYER_STRATEGIES, STRATEGY_CHOICES

REPO = Path(__file__).resolve().parents[1]


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start) : text.index(end, text.index(start))]


def test_design_notes_table_lists_every_strategy_in_table_order() -> None:
    notes = (REPO / "docs" / "design-notes.md").read_text(encoding="utf-8")
    table = _section(notes, "## First-layer channel strategies", "Why these rules")
    rows = re.findall(r"^\| `(\w+)` \|", table, flags=re.MULTILINE)
    assert rows == list(FIRST_LAYER_STRATEGIES)


def test_readme_names_every_strategy_in_table_order() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    bullet = _section(readme, "- **First-layer strategies**", "in `docs/design-notes.md`")
    assert re.findall(r"`(\w+)`", bullet.split(":", 1)[1]) == list(FIRST_LAYER_STRATEGIES)


def test_help_text_choices_come_from_the_table() -> None:
    assert STRATEGY_CHOICES.replace(" or ", ", ").split(", ") == list(FIRST_LAYER_STRATEGIES)
    assert all(FIRST_LAYER_STRATEGIES[name].doc for name in FIRST_LAYER_STRATEGIES)
