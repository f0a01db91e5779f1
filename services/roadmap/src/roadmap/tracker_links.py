"""An issue's links held as a set, so that a delivery writes only the links that change.

The caller holds the issue's row lock (every link change takes it), so the links read at the
start of a delivery stay true until it commits, and the issue's answer and event can be built
from them without reading the links again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prodops.runtime.db import Connection
from roadmap import tracker_sql as sql

# (target, key) -> by: "convention" (labels, milestones, …) or "api" (explicit, which wins).
Links = dict[tuple[str, str], str]


async def read_links(conn: Connection, issue_id: UUID) -> Links:
    """The issue's links."""
    rows = await conn.fetch(sql.SELECT_LINKS, issue_id)
    return {(r["target"], r["target_key"]): r["by"] for r in rows}


async def sync_convention_links(
    conn: Connection,
    *,
    workspace: str,
    issue_id: UUID,
    items: Sequence[str],
    launches: Sequence[str],
    current: Links,
) -> Links:
    """Make the convention links the ones named; returns the links after (api links stay)."""
    change = plan(current, items, launches)
    if change.stale:
        await conn.execute(sql.DELETE_STALE_CONVENTION_LINKS, issue_id, items, launches)
    if change.added:
        await conn.execute(sql.INSERT_CONVENTION_LINKS, workspace, issue_id, items, launches)
    return change.after


@dataclass(frozen=True)
class LinkChange:
    """What naming these convention links does to an issue's links."""

    after: Links
    stale: bool  # some convention link is no longer named
    added: bool  # some named link is new


def plan(current: Links, items: Sequence[str], launches: Sequence[str]) -> LinkChange:
    """The links after making the convention links the ones named (api links stay)."""
    wanted = {("item", key) for key in items} | {("launch", key) for key in launches}
    stale = {link for link, by in current.items() if by == "convention" and link not in wanted}
    after = {link: by for link, by in current.items() if link not in stale}
    added = {link: "convention" for link in wanted if link not in current}
    return LinkChange(after | added, bool(stale), bool(added))


def as_rows(links: Links) -> list[dict[str, Any]]:
    """The links as the issue's answer lists them, ordered by target then key."""
    return [{"target": t, "key": k, "by": by} for (t, k), by in sorted(links.items())]
