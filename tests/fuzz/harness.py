"""The fuzzing harness: Hypothesis in a worker thread, requests on the app's event loop.

Hypothesis runs synchronously, but a running app's pool and broker belong to the test's event
loop; so the fuzzing runs in a thread and hands each request back to that loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings

T = TypeVar("T")
# Generous: one request takes milliseconds; this only keeps a hung request from hanging the suite.
REQUEST_TIMEOUT_SECONDS = 30


def fuzz_settings(examples: int) -> hypothesis_settings:
    """Reproducible runs of `examples` cases: a fixed seed, no example database, no deadline."""
    return hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


@dataclass(frozen=True)
class Service:
    """A running service app and a way to call it from the fuzzing thread."""

    app: FastAPI
    client: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the app's loop and wait for it (from another thread)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=REQUEST_TIMEOUT_SECONDS)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request to the app, from the fuzzing thread."""
        return self.call(self.client.request(method, url, **kwargs))
