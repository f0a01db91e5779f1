"""The shell examples of README.md and docs/*.md, read as the docs write them.

One convention everywhere: a block fenced ```console holds commands, each a line starting with
`$ ` (a line ending in `\\` continues it), and after each the output the doc shows, if any, where
`…` stands for anything. A block fenced ```console <kind> holds commands that are not run here,
of one kind each (`NOT_RUN`); ```sh, ```bash and ```shell are not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Kinds of blocks that are not run, and how each of their commands must start.
NOT_RUN = {
    # Tools this machine does not have: tests/test_compose.py and tests/test_deploy.py check
    # the files these commands use.
    "docker": ("docker ",),
    "kubectl": ("kubectl ",),
    # Commands that run for minutes or until stopped: `make up` is the doc test's own fixture,
    # `make test` is the suite this test is part of, the others are the chaos suite, the
    # benchmarks and a served process.
    "long": (
        "make up",
        "make test",
        "make chaos",
        "make bench",
        "PRODOPS_CHAOS_SCALE=",
        ".venv/bin/python -m bench",
        ".venv/bin/prodops up",
        ".venv/bin/prodops serve ",
    ),
}
_FENCE = re.compile(r"^```(\S*)(?: (\S+))?\s*$")


@dataclass(frozen=True)
class Command:
    """One command of a doc, the output the doc shows after it, and where it is."""

    text: str
    output: str
    where: str

    def matches(self, actual: str) -> bool:
        """Whether `actual` is what the doc shows, whitespace aside, `…` standing for anything."""
        pattern = ".*?".join(re.escape(part) for part in _squeezed(self.output).split("…"))
        return re.fullmatch(pattern, _squeezed(actual), re.DOTALL) is not None


@dataclass(frozen=True)
class Block:
    """A fenced shell block: its kind (`""` for one that runs) and its commands."""

    kind: str
    commands: tuple[Command, ...]


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def blocks(document: Path) -> list[Block]:
    """Every shell block of a document; a fence of another shell language is an error."""
    found: list[Block] = []
    lines: list[str] = []
    kind, start = "", 0
    inside: str | None = None
    for number, line in enumerate(document.read_text().splitlines(), start=1):
        fence = _FENCE.match(line)
        if inside is None and fence:
            inside, kind, start, lines = fence.group(1), fence.group(2) or "", number, []
            if inside in {"sh", "bash", "shell", "zsh"}:
                msg = f"{document.name}:{number}: fence shell blocks as ```console"
                raise ValueError(msg)
        elif inside is not None and line.strip() == "```":
            if inside == "console":
                where = f"{document.relative_to(ROOT)}:{start}"
                found.append(Block(kind, tuple(_commands(lines, where))))
            inside = None
        elif inside is not None:
            lines.append(line)
    return found


def _commands(lines: list[str], where: str) -> list[Command]:
    commands: list[Command] = []
    text: list[str] = []
    output: list[str] = []
    continued = False
    for line in lines:
        if continued:
            text.append(line)
        elif line.startswith("$ "):
            if text:
                commands.append(Command("\n".join(text), "\n".join(output), where))
            text, output = [line.removeprefix("$ ")], []
        elif text:
            output.append(line)
        else:
            msg = f"{where}: a console block starts with a `$ ` command"
            raise ValueError(msg)
        continued = line.endswith("\\")
    if text:
        commands.append(Command("\n".join(text), "\n".join(output), where))
    return commands
