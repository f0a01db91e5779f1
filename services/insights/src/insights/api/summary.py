"""Insights HTTP API: how many aggregates the workspace's events have told insights about."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from insights.projection import facts_sql
from prodops.http.auth import InsightsRead
from prodops.http.problems import PROBLEM_RESPONSES
from prodops.runtime.db import request_transaction

router = APIRouter(prefix="/v1", tags=["insights"], responses=PROBLEM_RESPONSES)


class Summary(BaseModel):
    """How many live aggregates of each kind insights has seen in the workspace."""

    feedback: int
    accounts: int
    objectives: int
    items: int
    launches: int
    tracker_issues: int


@router.get("/summary", response_model=Summary)
async def summary(request: Request, principal: InsightsRead) -> Summary:
    """Counts of what the workspace's events have told insights so far."""
    async with request_transaction(request, principal.workspace) as conn:
        rows = await conn.fetch(facts_sql.SUMMARY)
    counts = {r["aggregate"]: r["live"] for r in rows}
    return Summary(
        feedback=counts.get("feedback", 0),
        accounts=counts.get("account", 0),
        objectives=counts.get("objective", 0),
        items=counts.get("item", 0),
        launches=counts.get("launch", 0),
        tracker_issues=counts.get("tracker_issue", 0),
    )
