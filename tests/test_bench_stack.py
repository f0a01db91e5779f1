"""The benchmark harness starts what the tree has: its process commands name runnable modules."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

STACK = Path(__file__).resolve().parents[1] / "bench" / "stack.py"


def _commands() -> dict[str, list[str]]:
    for node in ast.parse(STACK.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("bench/stack.py defines no COMMANDS")


def test_each_benchmarked_process_is_a_module_python_can_run() -> None:
    commands = _commands()
    assert commands
    missing = [
        f"{process}: python -m {argv[0]}"
        for process, argv in sorted(commands.items())
        if importlib.util.find_spec(f"{argv[0]}.__main__") is None
    ]
    assert missing == []
