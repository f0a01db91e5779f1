"""`make up` smoke test: `prodops up` from an empty data dir serves the slice and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from running_up import SERVICES, RunningUp, alive, process_tree, running_up

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUp]:
    """One `prodops up` for the module, started in an empty directory."""
    with running_up(tmp_path_factory.mktemp("up")) as running:
        yield running


def test_a_second_up_in_the_same_directory_says_one_is_running(up: RunningUp) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "prodops_cli", "up"],
        cwd=up.directory,
        env=up.env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert f"pid {up.process.pid}" in second.stderr
    assert up.process.poll() is None, "the first prodops up must keep running"


def test_up_serves_the_slice_over_http_and_sigterm_leaves_no_process(up: RunningUp) -> None:
    headers = {"Authorization": f"Bearer {up.token}"}
    with httpx.Client(timeout=10) as http:
        for service in SERVICES:
            assert http.get(up.url(service, "/readyz")).status_code == 200, service
        created = http.post(
            up.url("feedback", "/v1/feedback"),
            json={"title": "Export to CSV", "body": "please"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 30
        summary = http.get(up.url("insights", "/v1/summary"), headers=headers)
        while summary.json().get("feedback") != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            summary = http.get(up.url("insights", "/v1/summary"), headers=headers)
        assert summary.status_code == 200, summary.text
        assert summary.json()["feedback"] == 1, up.output()

    started = process_tree(up)
    assert len(started) >= 5, up.output()
    up.process.send_signal(signal.SIGTERM)
    assert up.process.wait(timeout=30) == 0, up.output()
    assert [p.pid for p in started if alive(p)] == []
