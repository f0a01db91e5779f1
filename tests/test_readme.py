"""The README and docs/ stay true to the code they document."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_blocks import DOCUMENTS, NOT_RUN, ROOT, blocks

from prodops.runtime.settings import Settings
from prodops_cli.commands import app
from prodops_cli.settings_doc import REGENERATE, render

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
ARCHITECTURE = (DOCS / "architecture.md").read_text()


def test_docs_settings_md_is_what_the_settings_model_generates() -> None:
    committed = (DOCS / "settings.md").read_text()
    assert committed == render(), f"docs/settings.md is stale; regenerate it: {REGENERATE}"


def test_docs_settings_md_documents_every_setting() -> None:
    settings_doc = (DOCS / "settings.md").read_text()
    missing = [
        f"PRODOPS_{name.upper()}"
        for name in Settings.model_fields
        if f"`PRODOPS_{name.upper()}`" not in settings_doc
    ]
    assert missing == []


def test_every_setting_has_a_description() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not field.description]
    assert undescribed == []


def test_docs_api_md_documents_every_cli_command() -> None:
    api_doc = (DOCS / "api.md").read_text()
    commands = [
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    ]
    commands += [g.name or "" for g in app.registered_groups]
    assert commands
    missing = [name for name in commands if f"prodops {name}" not in api_doc]
    assert missing == []


def test_readme_shows_the_two_commands_first() -> None:
    first_section = README.split("## ", 2)[1]
    assert "make up" in first_section
    assert "make test" in first_section


def test_readme_is_at_most_250_lines() -> None:
    assert len(README.splitlines()) <= 250


def test_readme_maps_every_document_of_docs() -> None:
    documents = {p.name for p in DOCS.glob("*.md")}
    unmapped = sorted(name for name in documents if f"](docs/{name})" not in README)
    assert unmapped == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_blocks_not_run_hold_only_their_kind_of_command(document: Path) -> None:
    strays = [
        f"{command.where} ({block.kind}): $ {command.text}"
        for block in blocks(document)
        if block.kind
        for command in block.commands
        if not command.text.startswith(NOT_RUN.get(block.kind, ("\0",)))
    ]
    assert strays == []


def test_docs_performance_md_shows_the_latest_benchmark_table() -> None:
    latest = (ROOT / "bench" / "results" / "latest.md").read_text().strip()
    performance = (DOCS / "performance.md").read_text()
    assert latest in performance, "copy bench/results/latest.md into docs/performance.md"


def _section(text: str, heading: str) -> str:
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_architecture_follows_a_github_delivery_through_at_most_eight_modules() -> None:
    path = re.findall(
        r"^\d+\. \*\*`([^`]+)`\*\*",
        _section(ARCHITECTURE, "One GitHub delivery, to a launch signal"),
        re.M,
    )
    assert 1 <= len(path) <= 8
    assert path[0].endswith("webhooks/github.py")
    assert path[-1].endswith("signals/launches.py")
    missing = [module for module in path if not (ROOT / module).is_file()]
    assert missing == []


def test_architecture_module_map_names_only_modules_that_exist() -> None:
    rows = [
        line for line in _section(ARCHITECTURE, "Module map").splitlines() if line.startswith("| `")
    ]
    missing = []
    for row in rows:
        package, holds = row.split("|")[1:3]
        folder = ROOT / package.strip().strip("`")
        assert folder.is_dir(), folder
        for name in re.findall(r"`([a-z_]+\.py)`", holds):
            if not (folder / name).is_file():
                missing.append(f"{folder.relative_to(ROOT)}/{name}")
    assert missing == []
