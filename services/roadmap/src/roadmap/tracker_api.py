"""`/v1/tracker-issues` and the explicit links of tracker issues to items and launches."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request

from prodops.http.auth import Principal, RoadmapRead, RoadmapWrite
from prodops.http.pagination import Cursor, Limit, Page, page_of, time_id_after, time_id_key
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError
from prodops.http.routes import JSON_BODY, changes
from prodops.runtime.db import request_transaction
from roadmap import tracker
from roadmap.domain import KEY_PATTERN
from roadmap.tracker import IssueRef, TrackerIssue, TrackerIssueFilters
from roadmap.tracker_merge import LinkTarget

router = APIRouter(tags=["tracker issues"], responses=PROBLEM_RESPONSES)

# Whether an issue blocks a launch depends on the workspace's readiness policy, which only
# insights holds; a roadmap answer could disagree with it.
BLOCKER_MOVED = (
    "tracker issues have no blocker filter: whether an issue blocks a launch is decided by the "
    "workspace's readiness policy (blocker_labels, blocker_priorities), in insights' launch "
    "readiness (GET /v1/signals/launches/{key}); here, filter on the facts: priority, kind, state"
)

TargetKey = Annotated[str, Path(pattern=KEY_PATTERN, description="The item or launch key")]


def _not_found(detail: str) -> ProblemError:
    return ProblemError(404, "Not Found", detail)


@router.get("/v1/tracker-issues", response_model=Page[TrackerIssue])
async def list_tracker_issues(
    request: Request,
    principal: RoadmapRead,
    filters: Annotated[TrackerIssueFilters, Query()],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TrackerIssue]:
    """Tracker issues, most recently changed first; filter by provider, state, link, cycle."""
    if "blocker" in request.query_params:
        raise ProblemError(400, "Bad Request", BLOCKER_MOVED)
    async with request_transaction(request, principal.workspace) as conn:
        issues = await tracker.list_tracker_issues(
            conn=conn, limit=limit + 1, after=time_id_after(cursor), filters=filters
        )
    return page_of(issues, limit, lambda i: time_id_key(i.updated_at, i.id))


@router.get("/v1/tracker-issues/{issue_id}", response_model=TrackerIssue)
async def get_tracker_issue(
    request: Request, issue_id: UUID, principal: RoadmapRead
) -> TrackerIssue:
    """One tracker issue, with its links to items and launches."""
    async with request_transaction(request, principal.workspace) as conn:
        issue = await tracker.get_tracker_issue(conn=conn, issue_id=issue_id)
    if issue is None:
        raise _not_found("no such tracker issue in this workspace")
    return issue


async def _link(
    request: Request,
    principal: Principal,
    ref: IssueRef,
    target: LinkTarget,
    key: str,
    *,
    add: bool,
) -> TrackerIssue:
    change = tracker.link_issue if add else tracker.unlink_issue
    async with request_transaction(request, principal.workspace) as conn:
        issue = await change(
            conn=conn, workspace=principal.workspace, ref=ref, target=target, key=key
        )
    if issue is None:
        raise _not_found("no such tracker issue in this workspace")
    return issue


@changes(router, "PUT", "/v1/items/{key}/tracker-links", TrackerIssue)
async def link_item(
    request: Request, key: TargetKey, body: IssueRef, principal: RoadmapWrite
) -> TrackerIssue:
    """Link a tracker issue to an item explicitly; it stays linked whatever its labels say."""
    return await _link(request, principal, body, "item", key.upper(), add=True)


@router.delete("/v1/items/{key}/tracker-links", response_model=TrackerIssue, dependencies=JSON_BODY)
async def unlink_item(
    request: Request, key: TargetKey, body: IssueRef, principal: RoadmapWrite
) -> TrackerIssue:
    """Remove the link of a tracker issue to an item (a label may link it again)."""
    return await _link(request, principal, body, "item", key.upper(), add=False)


@changes(router, "PUT", "/v1/launches/{key}/tracker-links", TrackerIssue)
async def link_launch(
    request: Request, key: TargetKey, body: IssueRef, principal: RoadmapWrite
) -> TrackerIssue:
    """Link a tracker issue to a launch explicitly; it stays linked whatever its milestone."""
    return await _link(request, principal, body, "launch", key, add=True)


@router.delete(
    "/v1/launches/{key}/tracker-links", response_model=TrackerIssue, dependencies=JSON_BODY
)
async def unlink_launch(
    request: Request, key: TargetKey, body: IssueRef, principal: RoadmapWrite
) -> TrackerIssue:
    """Remove the link of a tracker issue to a launch (its milestone may link it again)."""
    return await _link(request, principal, body, "launch", key, add=False)
