"""GitLab milestone titles, read through GitLab's REST API with a source's token, and cached.

GitLab's issue and merge request hooks carry only `milestone_id` (gitlab-org/gitlab#218295). When
the source holds an API token (`PUT /v1/sources/{id}/api-access`), a milestone's title is read
from `GET {base}/api/v4/projects/{project id}/milestones/{id}`; a 404 there means a group
milestone, read from `GET {base}/api/v4/groups/{group path}/milestones/{id}` for each ancestor
group, nearest first. Titles are cached per (source, milestone id) for
`PRODOPS_GITLAB_MILESTONE_CACHE_SECONDS`, so a renamed milestone is seen once its entry expires.

The lookup runs inside the delivery's transaction (the webhook pipeline normalises there), but
before the issue row is locked, within `PRODOPS_GITLAB_API_TIMEOUT_SECONDS` in all. When it fails
(unreachable, 5xx, refused, unknown milestone) the delivery is kept `failed` with the reason, to be
replayed; an expired title is used as it is rather than failing. Without a token, milestones stay
unknown: they link no launch (explicit links still do).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

from prodops.runtime.db import Connection
from prodops.runtime.settings import Settings
from prodops.webhooks.sources import SecretBox
from roadmap import tracker_sql as sql
from roadmap.domain import TrackerIssueSnapshot
from roadmap.webhooks.gitlab import MilestoneRef, milestone_ref

log = logging.getLogger(__name__)


class MilestoneLookupError(Exception):
    """GitLab did not tell a milestone's title: unreachable, refused, or an unexpected answer."""


class MilestoneTitles:
    """Reads GitLab milestone titles for sources that hold an API token, through a cache."""

    def __init__(self, settings: Settings) -> None:
        self._box = SecretBox(settings)
        self._timeout = settings.gitlab_api_timeout_seconds
        self._ttl = settings.gitlab_milestone_cache_seconds

    async def name_milestones(
        self,
        conn: Connection,
        *,
        source_id: UUID,
        event_type: str,
        payload: Any,
        found: list[TrackerIssueSnapshot],
    ) -> list[TrackerIssueSnapshot]:
        """The snapshots with their milestone's title, where the hook sent only its id."""
        ref = milestone_ref(event_type, payload)
        if ref is None or not found:
            return found
        title = await self.title(conn, source_id=source_id, ref=ref)
        if title is None:
            return found
        return [snapshot.model_copy(update={"milestone": title}) for snapshot in found]

    async def title(self, conn: Connection, *, source_id: UUID, ref: MilestoneRef) -> str | None:
        """The milestone's title; None when the source holds no token."""
        access = await conn.fetchrow(sql.SELECT_API_ACCESS, source_id)
        if access is None:
            return None
        cached = await conn.fetchrow(sql.SELECT_MILESTONE, source_id, ref.milestone_id, self._ttl)
        if cached is not None and cached["fresh"]:
            return str(cached["title"])
        token = self._box.open(access["token"])
        try:
            title = await fetch_title(access["base_url"], token, ref, within=self._timeout)
        except MilestoneLookupError as exc:
            if cached is None:
                raise
            # A title that was right a moment ago beats failing every delivery while GitLab is down.
            log.warning("GitLab milestone %s kept its expired title: %s", ref.milestone_id, exc)
            return str(cached["title"])
        await conn.execute(
            sql.UPSERT_MILESTONE, access["workspace"], source_id, ref.milestone_id, title
        )
        return title


async def fetch_title(base_url: str, token: str, ref: MilestoneRef, *, within: float) -> str:
    """The milestone's title from GitLab: the project's milestone, else an ancestor group's."""
    paths = [f"/projects/{ref.project_id}/milestones/{ref.milestone_id}"]
    paths += [
        f"/groups/{quote(group, safe='')}/milestones/{ref.milestone_id}"
        for group in ancestor_groups(ref.project_path)
    ]
    api = base_url.rstrip("/") + "/api/v4"
    try:
        # One budget for every request: the vendor is waiting for this delivery's answer.
        async with (
            asyncio.timeout(within),
            httpx.AsyncClient(base_url=api, headers={"PRIVATE-TOKEN": token}) as http,
        ):
            for path in paths:
                answer = await http.get(path, timeout=within)
                if answer.status_code != httpx.codes.NOT_FOUND:
                    return _title(answer, ref)
    except (httpx.HTTPError, TimeoutError) as exc:
        # The class name only: an exception's text may quote the request, headers included.
        reason = type(exc).__name__
        raise MilestoneLookupError(f"GitLab API at {base_url} unreachable ({reason})") from exc
    raise MilestoneLookupError(
        f"GitLab API at {base_url} knows no milestone {ref.milestone_id} of {ref.project_path}"
        " that the token can see"
    )


def ancestor_groups(project_path: str) -> list[str]:
    """The groups a project sits in, nearest first: `a/b/c` is in `a/b`, then `a`."""
    parts = project_path.strip("/").split("/")[:-1]
    return ["/".join(parts[:end]) for end in range(len(parts), 0, -1)]


def _title(answer: httpx.Response, ref: MilestoneRef) -> str:
    if answer.status_code != httpx.codes.OK:
        raise MilestoneLookupError(
            f"GitLab API answered {answer.status_code} for milestone {ref.milestone_id}"
        )
    try:
        body = answer.json()
    except ValueError as exc:
        raise MilestoneLookupError("GitLab API answered a milestone that is not JSON") from exc
    title = body.get("title") if isinstance(body, dict) else None
    if not isinstance(title, str) or not title.strip():
        raise MilestoneLookupError(f"GitLab API sent milestone {ref.milestone_id} without a title")
    return title
