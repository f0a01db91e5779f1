"""The broker goes away and comes back: writes keep succeeding and nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prodops.runtime.settings import Settings
from prodops_cli.localinfra import LocalServer, free_port, start_nats
from support import create_app, eventually, running, summary


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[tuple[LocalServer, Path, int]]:
    """A nats-server of this test's own, so it can be killed and restarted."""
    port = free_port()
    server = start_nats(tmp_path / "nats", port=port)
    yield server, tmp_path / "nats", port
    server.stop()


async def test_writes_during_a_broker_outage_are_delivered_after_it_returns(
    settings: Settings, own_nats: tuple[LocalServer, Path, int], headers: dict[str, str]
) -> None:
    server, data_dir, port = own_nats
    settings = settings.model_copy(update={"nats_url": server.url})
    async with (
        running(create_app("feedback", settings)) as feedback,
        running(create_app("insights", settings)) as insights,
    ):
        await feedback.post("/v1/feedback", headers=headers, json={"title": "Before"})
        await eventually(lambda: summary(insights, headers), lambda c: c["feedback"] == 1)

        server.process.kill()  # no goodbye: the broker is simply gone
        server.process.wait()
        down = await eventually(lambda: feedback.get("/readyz"), lambda r: r.status_code == 503)
        assert down.json()["checks"]["broker"] == "unreachable"
        during = await feedback.post("/v1/feedback", headers=headers, json={"title": "During"})
        assert during.status_code == 201  # PostgreSQL took it; the outbox holds the event

        restarted = start_nats(data_dir, port=port)
        try:
            await eventually(lambda: feedback.get("/readyz"), lambda r: r.status_code == 200, 30)
            await eventually(lambda: summary(insights, headers), lambda c: c["feedback"] == 2, 30)
        finally:
            restarted.stop()
