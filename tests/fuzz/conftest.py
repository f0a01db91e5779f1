"""Fixtures of the fuzz tests: a service app running with its lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fuzz.harness import Service
from prodops.runtime.settings import Settings
from support import create_app, quiesce, running


@pytest.fixture
async def service(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Service]:
    """The service the test is parametrized with (indirectly), running with its lifespan."""
    app = create_app(request.param, settings)
    async with running(app) as client:
        yield Service(app, client, asyncio.get_running_loop())
        await quiesce(app)
