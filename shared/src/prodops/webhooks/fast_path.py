"""`POST /webhooks/{provider}/{source_id}` served ahead of the app's middlewares and router.

Vendor deliveries are the busiest requests of feedback and roadmap, and most of their cost was
the stack around the answer: the middlewares, matching against every route, dependency
injection, exception handling. Installed as the app's outermost middleware, this path keeps
what a delivery needs and shares it with the rest of the app: the same rate buckets and body
limit middlewares, the same server span name and metric series, the app's own exception
handlers (so errors are the same problem+json), and `WebhookEndpoint.answer`, which the
documented FastAPI route also serves.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from prodops.http.limits import BodyLimitMiddleware, RateLimitMiddleware, TokenBuckets
from prodops.http.problems import rendered_by_app
from prodops.http.telemetry import ServedRequests
from prodops.webhooks.endpoint import WebhookEndpoint
from prodops.webhooks.provider import headers_of

ROUTE = "/webhooks/{provider}/{source_id}"


def _target(path: str) -> tuple[str, str] | None:
    """The provider and source id of a delivery path, as FastAPI's route would match them."""
    parts = path.split("/")
    if len(parts) == 4 and parts[0] == "" and parts[1] == "webhooks" and parts[2] and parts[3]:
        return parts[2], parts[3]
    return None


class WebhookFastPath:
    """ASGI: deliveries answered here; everything else (other methods included) goes to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoint: WebhookEndpoint,
        service: str,
        body_limit: int,
        buckets: TokenBuckets,
        metrics: bool,
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        limited = RateLimitMiddleware(
            BodyLimitMiddleware(self._serve, limit=body_limit), buckets=buckets
        )
        self.served = ServedRequests(
            limited, service=service, route_of=lambda _scope: ROUTE, metrics=metrics
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a delivery, or pass the request on."""
        if scope["type"] != "http" or scope["method"] != "POST" or not _target(scope["path"]):
            await self.app(scope, receive, send)
            return
        await self.served(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = _target(scope["path"])
        assert target is not None  # only matching paths get here
        body = await _body(receive)
        if body is None:
            return  # the client went away; nobody to answer
        try:
            response = await self.endpoint.answer(
                scope["app"], *target, headers_of(scope["headers"]), body
            )
        except Exception as exc:  # noqa: BLE001 - rendered by the app's own handler, or re-raised
            response = await rendered_by_app(scope, exc)
        await response(scope, receive, send)


async def _body(receive: Receive) -> bytes | None:
    """The whole request body (BodyLimitMiddleware stops it at the limit); None on disconnect."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
