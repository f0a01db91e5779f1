"""GitLab milestone titles, read through GitLab's REST API with a source's token, and cached.

GitLab's issue and merge request hooks carry only `milestone_id` (gitlab-org/gitlab#218295). When
the source holds an API token (`PUT /v1/sources/{id}/api-access`), a milestone's title is read
from `GET {base}/api/v4/projects/{project id}/milestones/{id}`; a 404 there means a group
milestone, read from `GET {base}/api/v4/groups/{group path}/milestones/{id}` for each ancestor
group, nearest first. Titles are cached per (source, milestone id) for
`PRODOPS_GITLAB_MILESTONE_CACHE_SECONDS`, so a renamed milestone is seen once its entry expires.

GitLab may be slow, and the normaliser's transaction holds a lock every workspace's deliveries
wait on: so `MilestoneTitles.prepare` asks GitLab before that transaction opens (no transaction
is open while it waits) and caches what it reads, and the normaliser only reads the cache
(`titled`). A look-up that fails (unreachable, 5xx, refused, unknown milestone, over
`PRODOPS_GITLAB_API_TIMEOUT_SECONDS`) keeps the delivery `failed` with the reason, to be replayed;
an expired title is used as it is rather than failing. Without a token, milestones stay unknown:
they link no launch (explicit links still do).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
import orjson

from prodops.runtime.db import Connection, Pool
from prodops.runtime.settings import Settings
from prodops.webhooks.intake import Delivery
from prodops.webhooks.sources import SecretBox
from roadmap import tracker_sql as sql
from roadmap.tracker_snapshot import TrackerIssueSnapshot
from roadmap.webhooks import gitlab
from roadmap.webhooks.gitlab import MilestoneRef, milestone_ref

log = logging.getLogger(__name__)


class MilestoneLookupError(Exception):
    """GitLab did not tell a milestone's title: unreachable, refused, or an unexpected answer."""


def milestone_refs(deliveries: Sequence[Delivery]) -> dict[UUID, MilestoneRef]:
    """The milestone each GitLab delivery names by id only, for those that name an issue."""
    refs = {d.id: _named_milestone(d) for d in deliveries if d.provider == gitlab.PROVIDER.name}
    return {delivery_id: ref for delivery_id, ref in refs.items() if ref is not None}


def _named_milestone(delivery: Delivery) -> MilestoneRef | None:
    try:
        payload = orjson.loads(delivery.body)
        ref = milestone_ref(delivery.event_type, payload)
        named = ref is not None and gitlab.snapshots(delivery.event_type, payload)
    except Exception:  # noqa: BLE001 - the normaliser fails such a delivery with its reason
        return None
    return ref if named else None


def _lookups(
    deliveries: Sequence[Delivery], refs: Mapping[UUID, MilestoneRef]
) -> dict[tuple[UUID, int], tuple[MilestoneRef, list[UUID]]]:
    """Each (source, milestone id) to look up once, and the deliveries that need it."""
    wanted: dict[tuple[UUID, int], tuple[MilestoneRef, list[UUID]]] = {}
    for delivery in deliveries:
        ref = refs.get(delivery.id)
        if ref is not None:
            wanted.setdefault((delivery.source_id, ref.milestone_id), (ref, []))[1].append(
                delivery.id
            )
    return wanted


class MilestoneTitles:
    """Reads GitLab milestone titles for sources that hold an API token, into a cache."""

    def __init__(self, settings: Settings) -> None:
        self._box = SecretBox(settings)
        self._timeout = settings.gitlab_api_timeout_seconds
        self._ttl = settings.gitlab_milestone_cache_seconds

    async def prepare(self, pool: Pool, deliveries: Sequence[Delivery]) -> dict[UUID, str]:
        """Cache the titles these deliveries need, outside any transaction; errors by delivery."""
        wanted = _lookups(deliveries, milestone_refs(deliveries))
        if not wanted:
            return {}
        sources, ids = [s for s, _ in wanted], [m for _, m in wanted]
        known = {
            (r["source_id"], r["milestone_id"]): r
            for r in await pool.fetch(sql.MILESTONES_OF, sources, ids, self._ttl)
        }
        failed: dict[UUID, str] = {}
        for (source_id, _), (ref, delivery_ids) in wanted.items():
            row = known[source_id, ref.milestone_id]
            if row["token"] is None or row["fresh"]:
                continue
            error = await self._look_up(pool, source_id, ref, row)
            failed |= dict.fromkeys(delivery_ids, error) if error else {}
        return failed

    async def _look_up(self, pool: Pool, source_id: UUID, ref: MilestoneRef, row: Any) -> str:
        """Read and cache one title; the reason it failed, or "" (an expired title is kept)."""
        token = self._box.open(row["token"])
        try:
            title = await fetch_title(row["base_url"], token, ref, within=self._timeout)
        except MilestoneLookupError as exc:
            if row["title"] is None:
                return f"{type(exc).__name__}: {exc}"
            # A title that was right a moment ago beats failing every delivery while GitLab is down.
            log.warning("GitLab milestone %s kept its expired title: %s", ref.milestone_id, exc)
            return ""
        await pool.execute(
            sql.UPSERT_MILESTONE, row["workspace"], source_id, ref.milestone_id, title
        )
        return ""


async def titled(
    conn: Connection, deliveries: Sequence[Delivery], found: list[list[TrackerIssueSnapshot]]
) -> list[list[TrackerIssueSnapshot]]:
    """The deliveries' snapshots with their milestone's cached title, where the hook sent an id."""
    refs = milestone_refs(deliveries)
    wanted = _lookups(deliveries, refs)
    if not wanted:
        return found
    sources, ids = [s for s, _ in wanted], [m for _, m in wanted]
    rows = await conn.fetch(sql.MILESTONES_OF, sources, ids, 0.0)
    titles = {(r["source_id"], r["milestone_id"]): r for r in rows}
    out = []
    for delivery, snapshots in zip(deliveries, found, strict=True):
        ref = refs.get(delivery.id)
        row = None if ref is None else titles[delivery.source_id, ref.milestone_id]
        if row is None or row["token"] is None:
            out.append(snapshots)
        elif row["title"] is None:  # API access given since the look-ups ran: replay it
            milestone = row["milestone_id"]
            raise MilestoneLookupError(f"GitLab milestone {milestone} was not looked up yet")
        else:
            out.append([s.model_copy(update={"milestone": row["title"]}) for s in snapshots])
    return out


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
