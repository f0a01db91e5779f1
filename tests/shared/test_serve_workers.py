"""`prodops serve <service> --workers N`: N processes share the port, each a whole replica."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from prodops.http.auth import mint_token
from prodops.runtime.settings import Settings
from prodops_cli.localinfra import free_port
from support import assert_problem

READY_SECONDS = 60


def environment(settings: Settings, workers: int) -> dict[str, str]:
    """Only the test's PRODOPS_* settings, and the worker count as PRODOPS_HTTP_WORKERS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODOPS_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
            env[f"PRODOPS_{name.upper()}"] = (
                json.dumps(plain) if isinstance(plain, tuple) else str(plain)
            )
    return env | {"PRODOPS_HTTP_WORKERS": str(workers)}


@pytest.fixture
def insights_with_two_workers(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    with (tmp_path / "insights.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prodops_cli", "serve", "insights", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(settings, workers=2),
            process_group=0,
        )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def ready(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited while starting"
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"not ready within {READY_SECONDS}s")


def workers_ready(process: subprocess.Popen[bytes], within: float) -> list[psutil.Process]:
    """The worker processes, once both have started (multiprocessing also starts a tracker)."""
    deadline = time.monotonic() + within
    while True:
        children = psutil.Process(process.pid).children()
        workers = [p for p in children if "spawn_main" in " ".join(p.cmdline())]
        if len(workers) >= 2 or time.monotonic() > deadline:
            return workers
        time.sleep(0.2)


async def test_two_workers_serve_the_api_and_stop_together(
    insights_with_two_workers: tuple[subprocess.Popen[bytes], str], settings: Settings
) -> None:
    process, url = insights_with_two_workers
    await ready(process, url)
    workers = workers_ready(process, within=READY_SECONDS)
    assert len(workers) == 2

    token = mint_token(settings, workspace="ws-workers", scopes=["insights:read"])
    for _ in range(4):
        # A new connection each time, so both workers get to accept some.
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(
                f"{url}/v1/signals/launches/RD-404", headers={"Authorization": f"Bearer {token}"}
            )
        assert_problem(answer, 404)

    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0
    assert not any(worker.is_running() for worker in workers)
