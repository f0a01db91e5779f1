"""A `prodops up` run in a directory of its own, on free ports: the fixture of the slow tests."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from prodops_cli.localinfra import free_port

STARTUP_TIMEOUT_SECONDS = 90.0
SERVICES = ("feedback", "roadmap", "insights")


@dataclass
class RunningUp:
    """A `prodops up` subprocess, what it printed so far, and where it runs."""

    process: subprocess.Popen[str]
    directory: Path
    env: dict[str, str]
    ports: dict[str, int]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    printed: list[str] = field(default_factory=list)
    token: str = ""

    def url(self, service: str, path: str) -> str:
        """The URL of a path on one of the services."""
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def output(self) -> str:
        """Everything printed so far, with stderr and the service logs, to explain a failure."""
        while not self.lines.empty():
            self.printed.append(self.lines.get_nowait())
        parts = ["stdout:", *self.printed, "stderr:", _read(self.directory / "up.stderr")]
        for log in sorted((self.directory / ".prodops" / "logs").glob("*.log")):
            parts += [f"{log.name}:", _read(log)[-4000:]]
        return "\n".join(parts)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def start_up(directory: Path) -> RunningUp:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODOPS_")}
    ports = {name: free_port() for name in SERVICES}
    env |= {f"PRODOPS_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env["PRODOPS_ENV"] = "development"
    with (directory / "up.stderr").open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "prodops_cli", "up"],
            cwd=directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    running = RunningUp(process, directory, env, ports)
    threading.Thread(target=_pump, args=(process, running.lines), daemon=True).start()
    return running


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))


def wait_for_token(up: RunningUp) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            line = up.lines.get(timeout=0.5)
        except queue.Empty:
            if up.process.poll() is not None:
                pytest.fail(f"prodops up exited with {up.process.returncode}\n{up.output()}")
            continue
        up.printed.append(line)
        if line.strip().startswith("export TOKEN="):
            return line.strip().removeprefix("export TOKEN=")
    pytest.fail(f"prodops up printed no token within {STARTUP_TIMEOUT_SECONDS}s\n{up.output()}")


def process_tree(up: RunningUp) -> list[psutil.Process]:
    """Every process `up` started, including PostgreSQL, which runs in a session of its own."""
    tree = {p.pid: p for p in psutil.Process(up.process.pid).children(recursive=True)}
    for process in psutil.process_iter(["cmdline"]):
        if str(up.directory) in " ".join(process.info["cmdline"] or []):
            tree.setdefault(process.pid, process)
    return list(tree.values())


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@contextmanager
def running_up(directory: Path) -> Iterator[RunningUp]:
    """`prodops up` started in `directory`, until its token is printed; everything killed after."""
    running = start_up(directory)
    try:
        running.token = wait_for_token(running)
        yield running
    finally:
        if running.process.poll() is None:
            leftovers = process_tree(running)
            running.process.kill()
            running.process.wait()
            for process in leftovers:
                if alive(process):
                    process.kill()
