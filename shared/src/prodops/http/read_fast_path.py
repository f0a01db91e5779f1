"""Hot reads (`GET /v1/…/{key}`) served ahead of the app's middlewares, router and dependencies.

A read such as a launch's readiness is polled by dashboards and other tools, and most of its
cost was the stack around the answer, as it was for vendor deliveries (`webhook_fast_path`).
This path answers only the plain case, where the app's answer is known to be the same: a GET
without a body, a key the route accepts, and a bearer token that this process has already
verified (`TokenVerifier.remembered`) and that carries the route's scope. Everything else goes
on to the app unchanged: an unknown, expired or refused token, a missing scope, an odd path.
What it answers goes through the same server span and metric series, the same rate buckets and
the app's own exception handlers, and comes from the answer function the route itself calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from prodops.http.auth import Principal, TokenVerifier
from prodops.http.limits import RateLimitMiddleware, TokenBuckets
from prodops.http.problems import rendered_by_app
from prodops.http.telemetry import ServedRequests

Answer = Callable[[Starlette, Principal, str], Awaitable[Response]]


@dataclass(frozen=True)
class HotRead:
    """A GET route whose last path segment is its one parameter, and the route's own answer."""

    template: str  # "/v1/signals/launches/{key}"
    scope: str  # the scope the route requires
    max_length: int  # the parameter's max_length, as the route declares it
    answer: Answer

    @property
    def prefix(self) -> str:
        """The path up to the parameter."""
        return self.template[: self.template.index("{")]


@dataclass(frozen=True, slots=True)
class _Hit:
    read: HotRead
    principal: Principal
    key: str


class ReadFastPath:
    """ASGI: the plain case of each hot read answered here; every other request goes to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        reads: Sequence[HotRead],
        verifier: TokenVerifier,
        service: str,
        buckets: TokenBuckets,
        metrics: bool,
    ) -> None:
        self.app = app
        self.reads = tuple(reads)
        self.verifier = verifier
        self.served = ServedRequests(
            RateLimitMiddleware(self._serve, buckets=buckets),
            service=service,
            route_of=lambda scope: scope["prodops.hot_read"].read.template,
            metrics=metrics,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a hot read, or pass the request on."""
        hit = self._hit(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if hit is None:
            await self.app(scope, receive, send)
            return
        scope["prodops.hot_read"] = hit
        await self.served(scope, receive, send)

    def _hit(self, scope: Scope) -> _Hit | None:
        path: str = scope["path"]
        read = next((r for r in self.reads if path.startswith(r.prefix)), None)
        if read is None:
            return None
        key = path[len(read.prefix) :]
        if not key or "/" in key or len(key) > read.max_length:
            return None
        token = _plain_request_token(scope["headers"])
        principal = self.verifier.remembered(token) if token else None
        if principal is None or read.scope not in principal.scopes:
            return None
        return _Hit(read, principal, key)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        hit: _Hit = scope["prodops.hot_read"]
        try:
            response = await hit.read.answer(scope["app"], hit.principal, hit.key)
        except Exception as exc:  # noqa: BLE001 - rendered by the app's own handler, or re-raised
            response = await rendered_by_app(scope, exc)
        await response(scope, receive, send)


def _plain_request_token(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The bearer token of a request without a body, as FastAPI's HTTPBearer reads it; else None.

    A request with a body is left to the app, whose body limit and route decide what to do.
    """
    token = None
    for name, value in headers:
        if name in (b"content-length", b"transfer-encoding") and value != b"0":
            return None
        if name == b"authorization":
            if token is not None:
                return None  # two headers: which one the app reads is the app's business
            scheme, _, param = value.partition(b" ")
            if scheme.lower() != b"bearer" or not param:
                return None
            token = param.decode("latin-1")
    return token
