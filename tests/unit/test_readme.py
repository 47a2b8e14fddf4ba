from __future__ import annotations

from pathlib import Path

from devstack.config_table import BEGIN, END, table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_configuration_table_matches_the_settings() -> None:
    text = README.read_text()
    inside = text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
    assert inside == table(), "run: python -m devstack.config_table, and paste it into README.md"
