"""Every command of README.md and docs/*.md runs as written beside a running `prodops up`.

One `prodops up` serves every document, in a directory of its own standing for a fresh clone
(its `.venv` is this checkout's). Each document's ```console blocks run in order, each command in
bash with no `PRODOPS_*` variable set, as a reader's shell would be; what a command exports
carries to the document's later commands. A command must exit 0 and print what the doc shows
(`doc_blocks.Command.matches`). The docs name the default ports; the commands are sent to the
fixture's free ports instead, since a developer's own `make up` may hold the defaults.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_blocks import DOCUMENTS, ROOT, Command, blocks
from running_up import RunningUp, running_up

pytestmark = pytest.mark.slow

DEFAULT_PORTS = {"feedback": 8001, "roadmap": 8002, "insights": 8003}
COMMAND_TIMEOUT_SECONDS = 120.0
# Insights applies events a moment after the write that caused them: a read that shows what
# the doc shows only once the event is applied is read again for this long.
SETTLE_SECONDS = 20.0


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    """One `prodops up` in a directory with this checkout's `.venv`, as `make up` leaves one."""
    directory = tmp_path_factory.mktemp("clone")
    (directory / ".venv").symlink_to(ROOT / ".venv")
    with running_up(directory) as running:
        yield running


def test_prodops_up_leaves_a_private_dev_env_and_prints_no_secret(up: RunningUp) -> None:
    dev_env = up.directory / ".prodops" / "dev.env"
    assert stat.S_IMODE(dev_env.stat().st_mode) == 0o600
    secret = next(
        line.split("=", 1)[1].strip("'")
        for line in dev_env.read_text().splitlines()
        if line.startswith("PRODOPS_JWT_SECRET=")
    )
    assert secret not in up.output()


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_every_console_command_of_the_document_runs_as_written(
    up: RunningUp, document: Path, tmp_path: Path
) -> None:
    state = tmp_path / "exported.sh"
    state.write_text("")
    failures = []
    for block in blocks(document):
        if block.kind:
            continue  # not run; test_readme.py checks they hold only their kind's commands
        for command in block.commands:
            failure = _run(up, command, state)
            if failure:
                failures.append(failure)
    assert failures == [], "\n\n".join(failures) + "\n\n" + up.output()[-3000:]


def _run(up: RunningUp, command: Command, state: Path) -> str | None:
    """None when the command exits 0 and prints what the doc shows; else what went wrong."""
    text = command.text
    for service, port in DEFAULT_PORTS.items():
        text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{up.ports[service]}")
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        result = _bash(text, state, up.directory)
        shown = not command.output or command.matches(result.stdout)
        if result.returncode == 0 and shown:
            return None
        if not _is_read(text) or time.monotonic() > deadline:
            return (
                f"{command.where}: $ {command.text}\nexit {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"the doc shows:\n{command.output}"
            )
        time.sleep(0.5)


def _bash(text: str, state: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODOPS_")}
    script = f'. "{state}"\n{text}\nstatus=$?\nexport -p > "{state}"\nexit $status\n'
    return subprocess.run(
        ["bash", "-c", script],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def _is_read(text: str) -> bool:
    """A curl that only reads, so that sending it again changes nothing."""
    words = text.split()
    return bool(words) and words[0] == "curl" and not {"-X", "-d", "--data"} & set(words)
