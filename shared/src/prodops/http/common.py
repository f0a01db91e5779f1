"""Routes every service has: health, dead letters and the AsyncAPI document."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from prodops.http.auth import Admin
from prodops.http.pagination import Cursor, Limit, Page, time_id_after
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError
from prodops.http.routes import newest_first
from prodops.runtime.db import request_transaction

health_router = APIRouter(tags=["health"])
dead_letter_router = APIRouter(
    prefix="/v1/dead-letters", tags=["dead letters"], responses=PROBLEM_RESPONSES
)
asyncapi_router = APIRouter(tags=["events"])


class Health(BaseModel):
    """Whether the process (and, for readiness, its dependencies) is up."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


@health_router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@health_router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request) -> Any:
    """The database and the broker are reachable."""
    checks = {"database": "ok", "broker": "ok"}
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is None:
        checks = {"database": "not started", "broker": "not started"}
    else:
        try:
            async with asyncio.timeout(2):
                await runtime.pool.fetchval("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["database"] = type(exc).__name__
        if not await runtime.broker.ping(timeout=2):
            checks["broker"] = "unreachable"
    if all(v == "ok" for v in checks.values()):
        return Health(status="ok", checks=checks)
    return JSONResponse(Health(status="unavailable", checks=checks).model_dump(), status_code=503)


class DeadLetter(BaseModel):
    """An event whose handler kept failing, kept with its error."""

    id: UUID
    consumer: str
    event_id: UUID
    type: str
    subject: str
    error: str
    deliveries: int
    status: Literal["dead", "replayed"]
    created_at: datetime
    replayed_at: datetime | None
    event: dict[str, Any] | None


_LIST = """
SELECT id, consumer, event_id, type, subject, error, deliveries, status, created_at, replayed_at,
       payload
FROM dead_letter
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""
_GET = (
    "SELECT consumer, payload, status FROM dead_letter WHERE id = $1 AND workspace = $2 FOR UPDATE"
)
_MARK_REPLAYED = "UPDATE dead_letter SET status = 'replayed', replayed_at = now() WHERE id = $1"


def _dead_letter(row: Any) -> DeadLetter:
    import orjson

    try:
        event = orjson.loads(row["payload"])
    except orjson.JSONDecodeError:
        event = None
    fields = {k: v for k, v in row.items() if k != "payload"}
    return DeadLetter(**fields, event=event)


@dead_letter_router.get("", response_model=Page[DeadLetter])
async def list_dead_letters(
    request: Request,
    principal: Admin,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Literal["dead", "replayed"] | None = None,
) -> Page[DeadLetter]:
    """Dead letters of the token's workspace, newest first."""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await conn.fetch(_LIST, status, *time_id_after(cursor), limit + 1)
    return newest_first([_dead_letter(r) for r in rows], limit)


class ReplayResult(BaseModel):
    """What a replay did."""

    id: UUID
    applied: bool
    detail: str


@dead_letter_router.post("/{dead_letter_id}/replay", response_model=ReplayResult)
async def replay_dead_letter(
    request: Request, dead_letter_id: UUID, principal: Admin
) -> ReplayResult:
    """Run the event through its consumer again; on success the dead letter is marked replayed."""
    runtime = request.app.state.runtime
    # The handler writes the service's own projections, so the replay runs as the schema owner;
    # the workspace check above the handler keeps it to the token's workspace.
    async with runtime.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_GET, dead_letter_id, principal.workspace)
        if row is None:
            raise ProblemError(404, "Not Found", "no such dead letter in this workspace")
        consumer = runtime.consumers.get(row["consumer"])
        if consumer is None:
            raise ProblemError(409, "Conflict", f"consumer {row['consumer']} is not running here")
        try:
            async with conn.transaction():
                applied = await consumer.replay(conn, row["payload"])
        except Exception as exc:
            raise ProblemError(
                422, "Unprocessable Content", f"the handler failed again: {type(exc).__name__}"
            ) from exc
        await conn.execute(_MARK_REPLAYED, dead_letter_id)
    detail = "applied" if applied else "already applied; nothing to do"
    return ReplayResult(id=dead_letter_id, applied=applied, detail=detail)


@asyncapi_router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json(request: Request) -> PlainTextResponse:
    """The AsyncAPI 3.0 document of the events this service emits and consumes."""
    spec = request.app.state.asyncapi.to_specification()
    return PlainTextResponse(spec.to_json(), media_type="application/json")


@asyncapi_router.get("/asyncapi.yaml", include_in_schema=False)
async def asyncapi_yaml(request: Request) -> PlainTextResponse:
    """The same document as YAML."""
    spec = request.app.state.asyncapi.to_specification()
    return PlainTextResponse(spec.to_yaml(), media_type="application/yaml")
