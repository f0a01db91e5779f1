"""Fixtures of the roadmap tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from prodops.runtime.db import Pool, create_pool
from prodops.runtime.settings import Settings
from support import serving


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The roadmap app, stopped only once its relay has published what the test wrote."""
    async with serving("roadmap", settings) as value:
        yield value


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    """A pool on the roadmap schema of the test database."""
    value = await create_pool(settings, schema="roadmap")
    yield value
    await value.close()
