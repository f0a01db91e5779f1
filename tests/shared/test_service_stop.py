"""A service's shutdown ends within its grace period, whatever its loops do."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from prodops.runtime.app import ServiceSpec, create_service_app
from prodops.runtime.settings import Settings


async def test_a_loop_deaf_to_cancellation_does_not_hold_shutdown(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    async def deaf() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # swallows the cancel, as a buggy loop would

    spec = ServiceSpec(
        name="feedback", description="test", background=lambda _pool, _s: [("deaf", deaf())]
    )
    quick = settings.model_copy(update={"shutdown_grace_seconds": 0.5})
    app = create_service_app(quick, spec)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.05)  # let the loop reach its sleep
        (loop,) = [t for t in app.state.runtime.tasks if t.get_name() == "feedback-deaf"]
        started = time.monotonic()
    stopped_in = time.monotonic() - started

    assert stopped_in < 5, stopped_in
    assert not loop.done()
    assert any(
        r.levelno == logging.ERROR and "feedback-deaf" in r.getMessage() for r in caplog.records
    )
    assert app.state.runtime.pool.is_closing()
    release.set()
    await loop
