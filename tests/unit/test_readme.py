"""The README's generated sections and its configuration table match the code."""

from __future__ import annotations

from hermes.docs import README, render
from hermes.settings import env_name, field_names


def test_generated_sections_are_current() -> None:
    text = README.read_text()
    assert "<!-- generated:errors -->" in text
    assert render(text) == text, "run `python -m hermes.docs` to refresh README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [env_name(f) for f in field_names() if f"`{env_name(f)}`" not in text]
    assert missing == []
