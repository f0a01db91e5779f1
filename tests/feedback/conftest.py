"""Fixtures of the feedback tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from prodops.runtime.settings import Settings
from support import serving


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The feedback app, stopped only once its relay has published what the test wrote."""
    async with serving("feedback", settings) as value:
        yield value
