"""The workspace's readiness and feedback-weight policies: read, replace, versioned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field

from insights.engine import lock_workspaces, refresh_all
from insights.rules.policies import FeedbackWeightPolicy, ReadinessPolicy
from prodops.contract import utcnow
from prodops.http.auth import Admin, InsightsRead, Principal
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError, documented_problem
from prodops.runtime.db import Connection, request_transaction

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=PROBLEM_RESPONSES)

_GET = "SELECT version, body, updated_at FROM policy WHERE kind = $1"
_PUT = """
INSERT INTO policy (workspace, kind, version, body, updated_at) VALUES ($1, $2, 1, $3, now())
ON CONFLICT (workspace, kind) DO UPDATE
SET version = policy.version + 1, body = EXCLUDED.body, updated_at = now()
RETURNING version, body, updated_at
"""
_KEEP_VERSION = """
INSERT INTO policy_version (workspace, kind, version, body) VALUES ($1, $2, $3, $4)
"""
_STALE: dict[int | str, dict[str, Any]] = {412: documented_problem(412)}
IfMatch = Annotated[
    str | None,
    Header(description="The policy version you read (`ETag`); 412 if it changed since."),
]


class _Versioned(BaseModel):
    """A policy as stored: its version and when it was replaced."""

    KIND: ClassVar[str]  # the `policy.kind` it is stored under
    version: int = Field(ge=0)
    updated_at: datetime | None


class ReadinessVersion(_Versioned):
    """The readiness policy with its version (0: the defaults, never replaced)."""

    KIND = "readiness"

    policy: ReadinessPolicy


class FeedbackWeightVersion(_Versioned):
    """The feedback-weight policy with its version (0: the defaults, never replaced)."""

    KIND = "feedback-weight"

    policy: FeedbackWeightPolicy


V = TypeVar("V", bound=_Versioned)


async def _read(conn: Connection, kind: str) -> dict[str, Any]:
    row = await conn.fetchrow(_GET, kind)
    if row is None:
        return {"version": 0, "updated_at": None, "policy": {}}
    return {"version": row["version"], "updated_at": row["updated_at"], "policy": row["body"]}


async def _current(request: Request, response: Response, principal: Principal, model: type[V]) -> V:
    """The workspace's policy as `model`, its version in the `ETag`."""
    async with request_transaction(request, principal.workspace) as conn:
        found = model.model_validate(await _read(conn, model.KIND))
    response.headers["ETag"] = f'"{found.version}"'
    return found


async def _replace(
    request: Request,
    response: Response,
    principal: Principal,
    policy: BaseModel,
    *,
    if_match: str | None,
    model: type[V],
) -> V:
    """Replace the policy unless `if_match` names another version; the new one as `model`."""
    ws, kind = principal.workspace, model.KIND
    async with request_transaction(request, ws) as conn:
        await lock_workspaces(conn, [ws])
        current = await _read(conn, kind)
        if if_match is not None and if_match.strip('W/"') != str(current["version"]):
            raise ProblemError(
                412, "Precondition Failed", f"the policy is at version {current['version']}"
            )
        body: dict[str, Any] = policy.model_dump(mode="json")
        row = await conn.fetchrow(_PUT, ws, kind, body)
        assert row is not None
        await conn.execute(_KEEP_VERSION, ws, kind, row["version"], body)
        # Every signal of the workspace follows the new policy at once, in this transaction.
        await refresh_all(conn, ws, emit=True, now=utcnow())
    saved = model.model_validate(
        {"version": row["version"], "updated_at": row["updated_at"], "policy": body}
    )
    response.headers["ETag"] = f'"{saved.version}"'
    return saved


@router.get("/readiness", response_model=ReadinessVersion)
async def get_readiness(
    request: Request, response: Response, principal: InsightsRead
) -> ReadinessVersion:
    """The launch-readiness policy: weights, thresholds, blocker rules, due days."""
    return await _current(request, response, principal, ReadinessVersion)


@router.put("/readiness", response_model=ReadinessVersion, responses=_STALE)
async def put_readiness(
    request: Request,
    response: Response,
    principal: Admin,
    policy: ReadinessPolicy,
    if_match: IfMatch = None,
) -> ReadinessVersion:
    """Replace the readiness policy; every launch is re-evaluated under it at once."""
    return await _replace(
        request, response, principal, policy, if_match=if_match, model=ReadinessVersion
    )


@router.get("/feedback-weight", response_model=FeedbackWeightVersion)
async def get_feedback_weight(
    request: Request, response: Response, principal: InsightsRead
) -> FeedbackWeightVersion:
    """How feedback is weighted: priority factors, ARR scale, half-life, window."""
    return await _current(request, response, principal, FeedbackWeightVersion)


@router.put("/feedback-weight", response_model=FeedbackWeightVersion, responses=_STALE)
async def put_feedback_weight(
    request: Request,
    response: Response,
    principal: Admin,
    policy: FeedbackWeightPolicy,
    if_match: IfMatch = None,
) -> FeedbackWeightVersion:
    """Replace the feedback-weight policy; demand and alignment are recomputed at once."""
    return await _replace(
        request, response, principal, policy, if_match=if_match, model=FeedbackWeightVersion
    )
