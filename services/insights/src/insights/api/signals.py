"""HTTP API of the signals: alignment, launch readiness, their history, and demand."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from insights.api import sql
from insights.engine import load_policies
from insights.rules.domain import decay_to
from prodops.contract import Reason, utcnow
from prodops.http.auth import InsightsRead, Principal
from prodops.http.pagination import (
    Cursor,
    Limit,
    Page,
    decode_cursor,
    page_of,
    time_id_after,
    time_id_key,
)
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError
from prodops.http.read_fast_path import HotRead
from prodops.runtime.db import request_transaction
from prodops.runtime.settings import Settings

router = APIRouter(prefix="/v1", tags=["signals"], responses=PROBLEM_RESPONSES)

Area = Annotated[str | None, Query(description="A product area; omit for the whole workspace.")]
LAUNCH_KEY_MAX_LENGTH = 200
LaunchKey = Annotated[str, Path(description="The launch's key.", max_length=LAUNCH_KEY_MAX_LENGTH)]
LAUNCH_ROUTE = "/v1/signals/launches/{key}"


class AlignmentSignal(BaseModel):
    """Alignment of the workspace (area null) or of one product area, with its reasons."""

    area: str | None
    alignment: float = Field(description="(strategic + customer) / 2, 0-100")
    strategic: float = Field(description="aligned_effort_share * allocation_fit, 0-100")
    customer: float = Field(description="sqrt(demand_coverage * evidence_ratio), 0-100")
    components: dict[str, float]
    reasons: list[Reason]
    computed_at: datetime
    changed_at: datetime


class LaunchSignal(BaseModel):
    """Launch readiness: status, score, components, and the reasons with their evidence."""

    launch_key: str
    name: str
    status: str = Field(description="launched | cancelled | blocked | at_risk | ready | on_track")
    score: float = Field(description="0-100")
    components: dict[str, float]
    reasons: list[Reason]
    details: dict[str, Any]
    computed_at: datetime
    changed_at: datetime


class HistoryPoint(BaseModel):
    """One value a signal took, from when it took it."""

    at: datetime
    id: str
    value: dict[str, Any]


class ItemDemand(BaseModel):
    """An item's weighted customer demand now."""

    key: str
    title: str
    status: str
    committed: bool
    demand: float
    feedback: int = Field(description="feedback items (with their merged duplicates) counted")


class TagDemand(BaseModel):
    """A support tag's weighted demand, and how much of it no committed item covers."""

    tag: str
    demand: float
    unaddressed: float
    feedback: int


class Demand(BaseModel):
    """What customers ask for, heaviest first; uncommitted items before committed ones."""

    items: list[ItemDemand]
    tags: list[TagDemand]


def _alignment(row: Any) -> AlignmentSignal:
    return AlignmentSignal(
        area=row["scope"] or None,
        **{k: row[k] for k in AlignmentSignal.model_fields if k != "area"},
    )


def _launch(row: Any) -> LaunchSignal:
    return LaunchSignal(**{k: row[k] for k in LaunchSignal.model_fields})


@router.get("/signals/alignment", response_model=AlignmentSignal)
async def get_alignment(
    request: Request, principal: InsightsRead, area: Area = None
) -> AlignmentSignal:
    """The workspace's alignment, or one product area's with `?area=`."""
    async with request_transaction(request, principal.workspace) as conn:
        row = await conn.fetchrow(sql.ALIGNMENT, area or "")
    if row is None:
        raise ProblemError(
            404, "Not Found", "no alignment yet for this " + ("area" if area else "workspace")
        )
    return _alignment(row)


@router.get("/signals/alignment/areas", response_model=Page[AlignmentSignal])
async def list_area_alignment(
    request: Request, principal: InsightsRead, limit: Limit = 50, cursor: Cursor = None
) -> Page[AlignmentSignal]:
    """The alignment of every product area, by area name."""
    after = decode_cursor(cursor)[0] if cursor else ""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await conn.fetch(sql.AREAS, str(after), limit + 1)
    return page_of([_alignment(r) for r in rows], limit, lambda s: [s.area])


@router.get("/signals/alignment/history", response_model=Page[HistoryPoint])
async def alignment_history(
    request: Request,
    principal: InsightsRead,
    area: Area = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[HistoryPoint]:
    """Every value the alignment took, newest first."""
    return await _history(
        request,
        ws=principal.workspace,
        kind="alignment",
        subject=area or "",
        limit=limit,
        cursor=cursor,
    )


@router.get("/signals/launches", response_model=Page[LaunchSignal])
async def list_launches(
    request: Request,
    principal: InsightsRead,
    status: Annotated[str | None, Query(description="Only launches in this status.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[LaunchSignal]:
    """Readiness of every launch, by key."""
    after = decode_cursor(cursor)[0] if cursor else ""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await conn.fetch(sql.LAUNCHES, str(after), status, limit + 1)
    return page_of([_launch(r) for r in rows], limit, lambda s: [s.launch_key])


@router.get(LAUNCH_ROUTE.removeprefix("/v1"), response_model=LaunchSignal)
async def get_launch(request: Request, principal: InsightsRead, key: LaunchKey) -> Response:
    """One launch's readiness, with the reasons and the evidence behind them."""
    return await launch_answer(request.app, principal, key)


async def launch_answer(app: Starlette, principal: Principal, key: str) -> Response:
    """The answer of `get_launch`, which `HOT_READS` also gives ahead of the app's stack.

    One statement (`launch_signal_of`) confines itself to the workspace, as a request
    transaction would, and reads the row.
    """
    settings: Settings = app.state.settings
    row = await app.state.pool.fetchrow(sql.LAUNCH_OF, principal.workspace, settings.app_role, key)
    if row is None:
        raise ProblemError(404, "Not Found", f"no readiness for launch {key!r}")
    return Response(_launch(row).model_dump_json(), media_type="application/json")


HOT_READS = (HotRead(LAUNCH_ROUTE, "insights:read", LAUNCH_KEY_MAX_LENGTH, launch_answer),)


@router.get("/signals/launches/{key}/history", response_model=Page[HistoryPoint])
async def launch_history(
    request: Request,
    principal: InsightsRead,
    key: LaunchKey,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[HistoryPoint]:
    """Every status and score the launch's readiness took, newest first."""
    return await _history(
        request, ws=principal.workspace, kind="launch", subject=key, limit=limit, cursor=cursor
    )


async def _history(
    request: Request, *, ws: str, kind: str, subject: str, limit: int, cursor: str | None
) -> Page[HistoryPoint]:
    at, ident = time_id_after(cursor)
    async with request_transaction(request, ws) as conn:
        rows = await conn.fetch(sql.HISTORY, kind, subject, at, ident, limit + 1)
    points = [HistoryPoint(at=r["at"], id=str(r["id"]), value=r["value"]) for r in rows]
    return page_of(points, limit, lambda p: time_id_key(p.at, UUID(p.id)))


@router.get("/demand", response_model=Demand)
async def demand(
    request: Request,
    principal: InsightsRead,
    limit: Annotated[int, Query(ge=1, le=200, description="How many items and tags.")] = 20,
) -> Demand:
    """Items and tags by weighted customer demand now; uncommitted items first."""
    async with request_transaction(request, principal.workspace) as conn:
        _, weight = await load_policies(conn, principal.workspace)
        items = await conn.fetch(sql.ITEM_DEMAND, limit)
        tags = await conn.fetch(sql.TAG_DEMAND, limit)
    decay = decay_to(utcnow(), weight)
    return Demand(
        items=[
            ItemDemand(
                key=r["key"],
                title=r["title"],
                status=r["status"],
                committed=r["committed"],
                demand=round(r["value"] * decay, 3),
                feedback=r["contributors"],
            )
            for r in items
        ],
        tags=[
            TagDemand(
                tag=r["target"],
                demand=round(r["value"] * decay, 3),
                unaddressed=round(r["unaddressed"] * decay, 3),
                feedback=r["contributors"],
            )
            for r in tags
        ],
    )
