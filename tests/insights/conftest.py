"""Fixtures of the insights tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from prodops.runtime.db import Pool, create_pool
from prodops.runtime.settings import Settings


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    """A pool on the insights schema of the test database."""
    value = await create_pool(settings, schema="insights", max_size=2)
    yield value
    await value.close()
