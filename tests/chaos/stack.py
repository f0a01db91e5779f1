"""A whole prodops deployment as real processes: PostgreSQL, nats-server(s), the three services.

Every process runs in a process group of its own, so a fault is a real signal to a real process
and `close()` leaves nothing behind, whatever the test did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import nats
import psutil

from prodops.http.auth import SCOPES, mint_token
from prodops.messaging.broker import ensure_stream
from prodops.runtime.settings import Settings
from prodops_cli.localinfra import LocalServer, free_port, start_nats, start_postgres

SERVICES = ("feedback", "roadmap", "insights")
WORKSPACE = "chaos"
READY_SECONDS = 60.0
CLI_SECONDS = 120.0
STREAM = "PRODOPS_CHAOS"


@dataclass
class Node:
    """One nats-server of the stack, with what it needs to be started again as itself."""

    name: str
    port: int
    data_dir: Path
    options: tuple[str, ...]
    server: LocalServer | None = None

    @property
    def url(self) -> str:
        """The client URL of this node."""
        return f"nats://127.0.0.1:{self.port}"


@dataclass
class Stack:
    """The processes of one chaos case and the settings that connect them."""

    root: Path
    nodes: list[Node] = field(default_factory=list)
    postgres: LocalServer | None = None
    postgres_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    nats_url: str = ""

    @property
    def database_url(self) -> str:
        """The database every service's schema lives in."""
        return f"postgresql://postgres@127.0.0.1:{self.postgres_port}/postgres"

    def settings(self) -> Settings:
        """The settings every process of the stack runs with."""
        values: dict[str, object] = {
            "env": "test",
            "database_url": self.database_url,
            "nats_url": self.nats_url,
            "jwt_secret": "chaos-secret-" + "x" * 40,
            "stream_name": STREAM,
            "stream_replicas": 3 if len(self.nodes) == 3 else 1,
            "rate_limit_per_second": 0,
            "consumer_ack_wait_seconds": 2.0,
            "consumer_backoff_seconds": (0.1, 0.2, 0.5),
            "consumer_max_deliver": 5,
            "outbox_poll_interval_seconds": 0.1,
            "outbox_publish_timeout_seconds": 2.0,
            "pool_max_size": 10,
            "log_level": "WARNING",
            "metrics_enabled": False,
        }
        return Settings.model_validate(values)

    def env(self) -> dict[str, str]:
        """The environment of a `prodops` subprocess: only the stack's PRODOPS_* settings."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PRODOPS_", "OTEL_EXPORTER_OTLP"))
        }
        for name, value in self.settings().model_dump().items():
            if value is None:
                continue
            plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            text = json.dumps(plain) if isinstance(plain, tuple) else str(plain)
            env[f"PRODOPS_{name.upper()}"] = text
        return env | {"PYTHONUNBUFFERED": "1"}

    def token(self) -> str:
        """A bearer token for the chaos workspace with every scope."""
        return mint_token(self.settings(), workspace=WORKSPACE, scopes=sorted(SCOPES))

    def url(self, service: str) -> str:
        """The base URL of a service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    async def start(self, *, cluster: bool = False) -> None:
        """PostgreSQL, one nats-server (or a 3-node cluster), the migrations, the services."""
        self.postgres_port = free_port()
        single = [Node("n0", free_port(), self.root / "nats-n0", ())]
        self.nodes = _cluster_nodes(self.root) if cluster else single
        await asyncio.gather(self._start_postgres(), *map(self.start_node, self.nodes))
        self.nats_url = self.nodes[0].url
        await asyncio.gather(self._create_stream(), self.cli("migrate"))
        if cluster:
            # The services start on the node leading the stream: losing it is the harder case.
            self.nats_url = await self.leader_url()
        self.ports = {name: free_port() for name in SERVICES}
        await asyncio.gather(*(self.start_service(name) for name in SERVICES))

    async def start_node(self, node: Node) -> None:
        """Start (or start again) one nats-server on its own port and store."""
        node.server = await asyncio.to_thread(
            start_nats, node.data_dir, port=node.port, options=node.options
        )

    async def _create_stream(self) -> None:
        # A fresh cluster elects its JetStream meta leader a moment after it listens.
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                nc = await nats.connect(self.nats_url)
                try:
                    await ensure_stream(nc.jetstream(), self.settings())
                    break
                finally:
                    await nc.close()
            except (nats.errors.Error, TimeoutError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def leader_url(self) -> str:
        """The client URL of the node that leads the stream now."""
        nc = await nats.connect(self.nats_url)
        try:
            info = await nc.jetstream().stream_info(STREAM)
        finally:
            await nc.close()
        leader = info.cluster.leader if info.cluster else None
        return next(n.url for n in self.nodes if n.name == leader)

    async def start_service(self, name: str) -> None:
        """Start a service as `prodops serve` and wait until it answers /readyz."""
        for attempt in range(3):
            command = ["serve", name, "--port", str(self.ports[name])]
            self.processes[name] = _spawn(command, self.env(), self.root / "logs" / f"{name}.log")
            if await self._ready(name):
                return
            if attempt < 2:
                # uvicorn binds only after its startup: another process may have taken the port.
                self.ports[name] = free_port()
        raise AssertionError(f"{name} could not start:\n{self.tail(name)}")

    async def _ready(self, name: str) -> bool:
        """Whether the service answers /readyz on its port; False if it exited first."""
        process = self.processes[name]
        deadline = time.monotonic() + READY_SECONDS
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    answer = await http.get(f"{self.url(name)}/readyz")
                    # Our process must be the listener: on a shared machine it may be another's.
                    if answer.status_code == 200 and _listens(process.pid, self.ports[name]):
                        return True
                await asyncio.sleep(0.1)
        raise AssertionError(f"{name} not ready within {READY_SECONDS}s:\n{self.tail(name)}")

    async def kill_service(self, name: str, signum: int = signal.SIGKILL) -> None:
        """Send `signum` to a service's process group and wait until it is gone."""
        process = self.processes[name]
        _signal_group(process, signum)
        await asyncio.to_thread(process.wait, READY_SECONDS)

    async def restart_postgres(self, *, down_for: float) -> None:
        """Crash PostgreSQL (immediate shutdown: no checkpoint), start it again on its data."""
        assert self.postgres is not None
        # SIGQUIT is `pg_ctl stop -m immediate`: every backend dies, recovery runs at start.
        self.postgres.process.send_signal(signal.SIGQUIT)
        await asyncio.to_thread(self.postgres.process.wait, READY_SECONDS)
        await asyncio.sleep(down_for)  # the length of the outage, not a wait for anything
        await self._start_postgres()

    async def _start_postgres(self) -> None:
        data = self.root / "postgres"
        self.postgres = await asyncio.to_thread(start_postgres, data, port=self.postgres_port)

    async def kill_node(self, node: Node) -> None:
        """SIGKILL one nats-server and wait until it is gone."""
        assert node.server is not None
        _signal_group(node.server.process, signal.SIGKILL)
        await asyncio.to_thread(node.server.process.wait, READY_SECONDS)

    async def cli(self, *args: str) -> str:
        """Run `prodops <args>` against the stack; returns its output, fails on an error."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "prodops_cli",
            *args,
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            process_group=0,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), CLI_SECONDS)
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        text = out.decode(errors="replace")
        assert process.returncode == 0, f"prodops {' '.join(args)} failed:\n{text}"
        return text

    def tail(self, name: str, lines: int = 20) -> str:
        """The last lines a service logged (all its runs in this case)."""
        try:
            text = (self.root / "logs" / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        # A line may hold a whole traceback as JSON: its start says enough.
        return "\n".join(line[:300] for line in text.splitlines()[-lines:])

    def close(self) -> None:
        """Stop everything this stack started, killing what does not stop at once."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        for node in self.nodes:
            if node.server is not None:
                _signal_group(node.server.process, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.server.process.wait(10)
        if self.postgres is not None:
            # Fast shutdown, so no shared memory is left behind; then the group, whatever lingers.
            self.postgres.stop(timeout=10)
            _signal_group(self.postgres.process, signal.SIGKILL)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`prodops <args>` in a process group of its own, appending to `log`."""
    log.parent.mkdir(exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prodops_cli", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=0,
        )


def _listens(pid: int, port: int) -> bool:
    with contextlib.suppress(psutil.Error):
        for conn in psutil.Process(pid).net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return True
    return False


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # Only while the leader is unreaped is its pid certain to still name our group.
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)


def _cluster_nodes(root: Path) -> list[Node]:
    """Three JetStream servers on loopback, each routed to the two others."""
    routes = [free_port() for _ in range(3)]
    nodes = []
    for i, route in enumerate(routes):
        others = ",".join(f"nats://127.0.0.1:{p}" for p in routes if p != route)
        options = (
            *("--server_name", f"n{i}", "--cluster_name", "prodops-chaos"),
            *("--cluster", f"nats://127.0.0.1:{route}", "--routes", others),
        )
        nodes.append(Node(f"n{i}", free_port(), root / f"nats-n{i}", options))
    return nodes
