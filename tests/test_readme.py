"""The README stays true to the code it documents."""

from __future__ import annotations

from pathlib import Path

from prodops.runtime.settings import Settings
from prodops_cli.commands import app

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    missing = [
        f"PRODOPS_{name.upper()}"
        for name in Settings.model_fields
        if f"`PRODOPS_{name.upper()}`" not in README
    ]
    assert missing == []


def test_readme_documents_every_cli_command() -> None:
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    commands += [g.name or "" for g in app.registered_groups]
    assert commands
    missing = [name for name in commands if f"prodops {name}" not in README]
    assert missing == []


def test_readme_shows_the_two_commands_first() -> None:
    first_section = README.split("## ", 2)[1]
    assert "make up" in first_section
    assert "make test" in first_section
