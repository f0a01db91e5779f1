"""The one tracker path on PostgreSQL gives what the naive reference gives, batch it as you will.

Generated sequences over every tracker (labels naming items; milestones, fixVersions and Linear
projects naming launches; Jira parents and children in any order; closing, reopening, deleting,
redeliveries; explicit links made and removed) are applied through `apply_operations` in batches
of random sizes, and one operation at a time by `tracker_reference`. The issues, their links and
each issue's events must be the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from tracker_reference import Reference

from prodops.contract import Event, TrackerIssueDeleted
from prodops.messaging import outbox
from prodops.runtime.db import Pool, workspace_transaction
from prodops.runtime.settings import Settings
from roadmap import tracker_sql as sql
from roadmap.tracker_merge import ExplicitLink, LinkTarget, Operation
from roadmap.tracker_rules import MUTABLE_FIELDS
from roadmap.tracker_snapshot import ClearableField, TrackerIssueSnapshot
from roadmap.tracker_write import apply_operations

CREATED = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
CLOSED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# (provider, external id, key): a few issues of each tracker, so operations meet each other.
ISSUES = [
    ("github", "g1", "o/r#1"),
    ("gitlab", "l1", "grp/p#1"),
    ("linear", "n1", "ENG-1"),
    ("jira", "j1", "SHOP-1"),
    ("jira", "j2", "SHOP-2"),
    ("jira", "j3", "SHOP-3"),
]
JIRA_KEYS = [key for provider, _, key in ISSUES if provider == "jira"]
LABELS = ["roadmap:IT-1", "roadmap:it-2", "bug", "P1", "blocker"]
LAUNCHES = ["L-1", "L-2"]


def _maybe(strategy: st.SearchStrategy[Any], *, unknown: bool) -> st.SearchStrategy[Any]:
    """Jira and Linear may leave a field out (None: keep what is stored)."""
    return st.none() | strategy if unknown else strategy


@st.composite
def snapshots(draw: st.DrawFn) -> TrackerIssueSnapshot:
    provider, external_id, key = draw(st.sampled_from(ISSUES) | st.sampled_from(ISSUES[-3:]))
    partial = provider in {"jira", "linear"}
    state = draw(_maybe(st.sampled_from(["open", "closed"]), unknown=partial))
    fields: dict[str, Any] = {
        "labels": draw(_maybe(st.lists(st.sampled_from(LABELS), unique=True), unknown=partial)),
        "state": state,
        "closed_at": CLOSED if state == "closed" else None,
        "priority": draw(st.sampled_from([None, "urgent", "low"])),
        "created_at": CREATED,
        "title": f"issue {key}",
    }
    cleared: set[ClearableField] = set()
    if provider in {"github", "gitlab"}:
        fields["milestone"] = draw(st.sampled_from([None, *LAUNCHES]))
        if provider == "gitlab" and fields["milestone"] is None and draw(st.booleans()):
            cleared.add("milestone")
    elif provider == "linear":
        fields["project"] = draw(st.sampled_from([None, *LAUNCHES]))
        if fields["project"] is None and draw(st.booleans()):
            cleared.add("project")
    else:
        fields["fix_versions"] = draw(_maybe(st.lists(st.sampled_from(LAUNCHES)), unknown=True))
        fields["parent_key"] = draw(st.sampled_from([None, *(k for k in JIRA_KEYS if k != key)]))
    return TrackerIssueSnapshot(
        provider=provider,
        external_id=external_id,
        key=key,
        cleared=frozenset(cleared),
        **fields,
    )


@st.composite
def deletions(draw: st.DrawFn) -> TrackerIssueSnapshot:
    provider, external_id, key = draw(st.sampled_from(ISSUES) | st.sampled_from(ISSUES[-3:]))
    return TrackerIssueSnapshot(provider=provider, external_id=external_id, key=key, deleted=True)


@st.composite
def explicit_links(draw: st.DrawFn) -> ExplicitLink:
    provider, external_id, _ = draw(st.sampled_from(ISSUES))
    target: LinkTarget = draw(st.sampled_from(["item", "launch"]))
    key = draw(st.sampled_from(["IT-1", "IT-3"] if target == "item" else ["L-1", "L-3"]))
    return ExplicitLink(provider, external_id, target, key, linked=draw(st.booleans()))


def _with_redeliveries(operations: list[Operation], repeats: list[int]) -> list[Operation]:
    """The operations with some of them delivered again right after, or later."""
    out = list(operations)
    for at in repeats:
        if out:
            out.insert(min(at + 1, len(out)), out[at % len(out)])
    return out


sequences = st.builds(
    _with_redeliveries,
    st.lists(
        st.one_of(snapshots(), snapshots(), snapshots(), deletions(), explicit_links()),
        min_size=5,
        max_size=40,
    ),
    st.lists(st.integers(0, 30), max_size=4),
)


def _batches(operations: Sequence[Operation], sizes: list[int]) -> list[list[Operation]]:
    out, at = [], 0
    for size in [*sizes, len(operations)]:
        if at < len(operations):
            out.append(list(operations[at : at + size]))
            at += size
    return out


async def _one_path(
    pool: Pool, settings: Settings, workspace: str, batches: list[list[Operation]]
) -> list[Event]:
    events: list[Event] = []
    for batch in batches:
        async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
            with outbox.deferred() as emitted:
                await apply_operations(conn, workspace, batch)
        events += emitted
    return events


async def _stored(pool: Pool, workspace: str) -> tuple[dict[Any, Any], dict[str, tuple[str, str]]]:
    rows = await pool.fetch("SELECT * FROM tracker_issue WHERE workspace = $1", workspace)
    idents = {str(r["id"]): (r["provider"], r["external_id"]) for r in rows}
    links = await pool.fetch(sql.LINKS_OF_MANY, [r["id"] for r in rows])
    issues: dict[Any, Any] = {
        idents[str(r["id"])]: ({n: r[n] for n in MUTABLE_FIELDS}, r["version"], {}) for r in rows
    }
    for link in links:
        issues[idents[str(link["tracker_issue_id"])]][2][link["target"], link["target_key"]] = link[
            "by"
        ]
    return issues, idents


def _event_of(event: Event, idents: dict[str, tuple[str, str]]) -> tuple[Any, str, Any]:
    data = event.parsed()
    ident = idents[str(data.id)]  # type: ignore[attr-defined]
    if isinstance(data, TrackerIssueDeleted):
        return ident, "deleted", {"version": data.version}
    seen = data.model_dump()
    kept = {name: seen[name] for name in ("version", "item_keys", "launch_keys", "state", "labels")}
    return ident, "upserted", kept


def _reference_event(event: tuple[Any, str, dict[str, Any]]) -> tuple[Any, str, Any]:
    ident, kind, data = event
    names = ("version",) if kind == "deleted" else ("version", "item_keys", "launch_keys")
    kept = {name: data[name] for name in names}
    if kind == "upserted":
        kept |= {"state": data["state"], "labels": data["labels"]}
    return ident, kind, kept


def _jira(external_id: str, key: str, **fields: Any) -> TrackerIssueSnapshot:
    return TrackerIssueSnapshot(
        provider="jira", external_id=external_id, key=key, created_at=CREATED, **fields
    )


# Always tried: a labelled epic whose child then loses it (deleted), a child before its epic
# whose links come over the API, and an explicit link over a convention one that a label drops.
EPIC_DELETED: list[Operation] = [
    _jira("j1", "SHOP-1", labels=["roadmap:IT-1"]),
    _jira("j2", "SHOP-2", parent_key="SHOP-1"),
    _jira("j1", "SHOP-1", deleted=True),
    _jira("j1", "SHOP-1", labels=["roadmap:IT-2"]),
]
CHILD_FIRST: list[Operation] = [
    _jira("j2", "SHOP-2", parent_key="SHOP-1"),
    _jira("j1", "SHOP-1", labels=[]),
    ExplicitLink("jira", "j1", "item", "IT-3", linked=True),
    ExplicitLink("jira", "j1", "item", "IT-3", linked=False),
]
OVER_A_LABEL: list[Operation] = [
    TrackerIssueSnapshot(
        provider="github",
        external_id="g1",
        key="o/r#1",
        labels=["roadmap:IT-1"],
        created_at=CREATED,
    ),
    ExplicitLink("github", "g1", "item", "IT-1", linked=True),
    TrackerIssueSnapshot(
        provider="github", external_id="g1", key="o/r#1", labels=[], created_at=CREATED
    ),
]


@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(operations=EPIC_DELETED, sizes=[1])
@example(operations=EPIC_DELETED, sizes=[4])
@example(operations=CHILD_FIRST, sizes=[1])
@example(operations=CHILD_FIRST, sizes=[2])
@example(operations=OVER_A_LABEL, sizes=[1])
@example(operations=OVER_A_LABEL, sizes=[3])
@given(operations=sequences, sizes=st.lists(st.integers(1, 8), max_size=12))
async def test_the_one_path_in_any_batches_equals_the_naive_reference(
    pool: Pool, settings: Settings, operations: list[Operation], sizes: list[int]
) -> None:
    workspace = f"ref-{uuid.uuid4().hex[:12]}"
    events = await _one_path(pool, settings, workspace, _batches(operations, sizes))
    reference = Reference()
    for operation in operations:
        reference.apply(operation)

    stored, idents = await _stored(pool, workspace)
    expected = {
        ident: (issue.fields, issue.version, issue.links)
        for ident, issue in reference.issues.items()
    }
    assert stored == expected
    # Each issue's events in order (siblings recomputed together may come in either order).
    seen = sorted((_event_of(event, idents) for event in events), key=lambda e: e[0])
    made = sorted((_reference_event(event) for event in reference.events), key=lambda e: e[0])
    assert seen == made


async def test_the_locked_lookup_is_planned_for_each_call_and_sees_one_workspace(
    pool: Pool, settings: Settings, workspace: str
) -> None:
    # A plan cached while the table was young read every issue of the workspace once per key.
    config = await pool.fetchval(
        "SELECT proconfig FROM pg_proc WHERE proname = 'tracker_issues_locked'"
        " AND pronamespace = current_schema()::regnamespace"
    )
    assert "plan_cache_mode=force_custom_plan" in config
    other = f"o-{workspace}"[:60]
    for ws in (workspace, other):
        await _one_path(pool, settings, ws, [OVER_A_LABEL[:1]])
    async with workspace_transaction(pool, workspace, role=settings.app_role) as conn:
        mine = await conn.fetch(sql.LOCK_MANY, workspace, ["github"], ["g1"])
        theirs = await conn.fetch(sql.LOCK_MANY, other, ["github"], ["g1"])
    assert [r["workspace"] for r in mine] == [workspace]
    assert theirs == []  # row-level security holds inside the function too
