"""The library's seams: `prodops` never imports a service or the command line's package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "shared" / "src" / "prodops"
SERVICES = ("feedback", "roadmap", "insights")
FORBIDDEN = (*SERVICES, "prodops_cli")
SUBPACKAGES = ("contract", "runtime", "messaging", "http", "webhooks")


def imported_modules(path: Path) -> list[str]:
    """Every module `path` imports, by statement or by `importlib.import_module("…")`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"import_module", "files"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(node.args[0].value)
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def test_the_library_imports_no_service_and_not_the_command_line() -> None:
    offending = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted(LIBRARY.rglob("*.py"))
        for module in imported_modules(path)
        if _top(module) in FORBIDDEN
    ]
    assert offending == []


def test_the_walk_sees_every_form_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import insights.projection.rebuild\n"
        "from roadmap import tracker\n"
        "import importlib\n"
        "importlib.import_module('feedback.bootstrap')\n"
        "def late():\n    from prodops_cli.up import run\n"
    )
    tops = {_top(m) for m in imported_modules(sample)}
    assert {"insights", "roadmap", "feedback", "prodops_cli"} <= tops


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reaches_the_library_only_through_its_subpackages(service: str) -> None:
    source = ROOT / "services" / service / "src" / service
    flat = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted(source.rglob("*.py"))
        for module in imported_modules(path)
        if _top(module) == "prodops"
        and module.count(".") == 1
        and module.split(".")[1] not in SUBPACKAGES
    ]
    assert flat == []


def test_no_service_imports_another() -> None:
    crossing = [
        f"{path.relative_to(ROOT)}: {module}"
        for service in SERVICES
        for path in sorted((ROOT / "services" / service / "src").rglob("*.py"))
        for module in imported_modules(path)
        if _top(module) in SERVICES and _top(module) != service
    ]
    assert crossing == []
