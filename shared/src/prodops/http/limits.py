"""ASGI middlewares that bound what one request or one caller may cost: body size and rate."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodops.http.problems import ProblemError, problem_response

EXEMPT_FROM_RATE_LIMIT = ("/healthz", "/readyz", "/metrics")


def _under(path: str, prefix: str) -> bool:
    # Whole segments only: "/v1/feedback/import" must not cover "/v1/feedback/imports".
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((value for key, value in scope["headers"] if key == name), None)


class _BodyTooLargeError(Exception):
    """Raised from `receive` to stop an application that keeps reading past the limit."""


class BodyLimitMiddleware:
    """Refuses request bodies over a byte limit with 413, streaming: the body is never buffered."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        unlimited_paths: Collection[str] = (),
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.unlimited_paths = tuple(unlimited_paths)
        # Longest prefix first, so the most specific limit wins.
        self.path_limits = sorted((path_limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int | None:
        """The byte limit of a path, or None when its bodies are unlimited."""
        if any(_under(path, prefix) for prefix in self.unlimited_paths):
            return None
        return next((size for prefix, size in self.path_limits if _under(path, prefix)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 on a declared or streamed body over the path's limit."""
        limit = self.limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        if _declared_length(scope) > limit:
            await _too_large(scope, receive, send, limit)
            return
        await _LimitedRequest(self.app, scope, receive, send, limit).run()


def _declared_length(scope: Scope) -> int:
    value = _header(scope, b"content-length")
    try:
        return int(value) if value is not None else 0
    except ValueError:
        # The server refuses a malformed Content-Length; counting still applies.
        return 0


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    error = ProblemError(
        413,
        "Content Too Large",
        f"the request body exceeds {limit} bytes",
        # The unread rest of the body makes the connection unusable for another request.
        headers={"Connection": "close"},
    )
    await problem_response(error, scope["path"])(scope, receive, send)


class _LimitedRequest:
    """One request whose body is counted as the application reads it."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int):
        self.app, self.scope, self.limit = app, scope, limit
        self.outer_receive, self.outer_send = receive, send
        self.received = 0
        self.response_started = False
        self.refused = False

    async def run(self) -> None:
        # Already answered (or too late to answer): the application was stopped on purpose.
        with contextlib.suppress(_BodyTooLargeError):
            await self.app(self.scope, self.receive, self.send)

    async def receive(self) -> Message:
        if self.refused:
            raise _BodyTooLargeError
        message = await self.outer_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self._refuse()
        return message

    async def _refuse(self) -> None:
        self.refused = True
        if not self.response_started:
            self.response_started = True
            await _too_large(self.scope, self.outer_receive, self.outer_send, self.limit)
        raise _BodyTooLargeError

    async def send(self, message: Message) -> None:
        # Once refused, whatever the application still answers (say, a 400 made from the
        # exception it caught while reading) must not follow the 413 already sent.
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.response_started = True
        await self.outer_send(message)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """A token bucket per caller: `rate_per_second` refill, `burst` at most, bounded in number."""

    def __init__(
        self,
        *,
        rate_per_second: float,
        burst: int,
        max_callers: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second > 0 and burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate_per_second
        self.burst = burst
        self.max_callers = max_callers
        self.clock = clock
        self.buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, caller: str) -> float | None:
        """Spend one token of `caller`; None if granted, else the seconds until one is due."""
        now = self.clock()
        bucket = self.buckets.pop(caller, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        # Re-inserted at the end: the front of the dict is always the least recently seen.
        self.buckets[caller] = bucket
        if len(self.buckets) > self.max_callers:
            self.buckets.popitem(last=False)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate


class RateLimitMiddleware:
    """Answers 429 with Retry-After when the caller's token bucket runs dry.

    Buckets live in this process, so each replica limits on its own: the effective rate of a
    deployment is the per-replica rate times the replica count. A caller is the SHA-256 of its
    Authorization header (unverified, which is cheap; the number of buckets is bounded, so
    random headers cannot exhaust memory), or its client IP without one. Behind a proxy, run
    the server with trusted proxy headers so the client IP is the caller's. Pass `buckets` to
    share them with another middleware of the same app (the webhook fast path).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rate_per_second: float = 0.0,
        burst: int = 1,
        buckets: TokenBuckets | None = None,
        exempt_paths: Collection[str] = EXEMPT_FROM_RATE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.buckets = buckets or TokenBuckets(
            rate_per_second=rate_per_second, burst=burst, clock=clock
        )
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through if its caller has a token left; otherwise answer 429."""
        exempt = scope["type"] != "http" or scope["path"] in self.exempt_paths
        if self.buckets.rate <= 0 or exempt:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_caller(scope))
        if wait is None:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil(wait))
        error = ProblemError(
            429,
            "Too Many Requests",
            f"the request rate limit was reached; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
        await problem_response(error, scope["path"])(scope, receive, send)


def _caller(scope: Scope) -> str:
    authorization = _header(scope, b"authorization")
    if authorization:
        return "auth:" + hashlib.sha256(authorization).hexdigest()
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"
