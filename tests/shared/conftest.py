"""Fixtures of the shared-library tests: a pool on the feedback schema and, for the webhook-kit
tests (test_webhook_pipeline, test_webhook_intake), an app of just the webhook pipeline on it,
with a normaliser the test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from prodops.runtime.db import Pool, create_pool
from prodops.runtime.settings import Settings
from webhook_kit import Mapper, webhook_app


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Pool]:
    pool = await create_pool(settings, schema="feedback")
    yield pool
    await pool.close()


@pytest.fixture
def mapper() -> Mapper:
    return Mapper()


@pytest.fixture
async def app(settings: Settings, pool: Pool, mapper: Mapper) -> AsyncIterator[FastAPI]:
    async with webhook_app(settings, pool, mapper) as app:
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http
