"""Every SQL statement of tracker issues and their links (row-level security scopes each one)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# The fields a delivery can change, in the order UPDATE_ISSUE takes them.
MUTABLE_FIELDS = (
    "key",
    "url",
    "title",
    "state",
    "state_reason",
    "kind",
    "priority",
    "blocker",
    "labels",
    "estimate",
    "assignees",
    "milestone",
    "fix_versions",
    "project",
    "parent_key",
    "is_pull_request",
    "merged",
    "created_at",
    "closed_at",
    "deleted",
    "cycle",
)
# The JSON objects of new issues (INSERT_ISSUE, INSERT_NEW_ISSUES) and of changed ones
# (UPDATE_ISSUES): their keys, in the order `issue_rows` is given the values.
INSERTED = ("id", "workspace", "provider", "external_id", *MUTABLE_FIELDS)
UPDATED = ("id", *MUTABLE_FIELDS)


def issue_rows(columns: tuple[str, ...], rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows of values (an issue's id first) as the objects `jsonb_populate_recordset` reads."""
    return [dict(zip(columns, (str(row[0]), *row[1:]), strict=True)) for row in rows]


_LINKS = """
    COALESCE((
        SELECT jsonb_agg(
            jsonb_build_object('target', l.target, 'key', l.target_key, 'by', l.by)
            ORDER BY l.target, l.target_key)
        FROM tracker_link l WHERE l.tracker_issue_id = i.id
    ), '[]'::jsonb) AS links
"""

LOCK_BY_EXTERNAL_ID = """
SELECT * FROM tracker_issue
WHERE workspace = $1 AND provider = $2 AND external_id = $3
FOR UPDATE
"""

LOCK_BY_URL = """
SELECT * FROM tracker_issue
WHERE workspace = $1 AND url = $2 AND NOT deleted
ORDER BY updated_at DESC, id DESC
LIMIT 1
FOR UPDATE
"""

# New issues, each a JSON object of the table's columns (arrays of arrays, such as each issue's
# labels, cannot be sent as parameters): `issue_rows(INSERTED, ...)`.
_INSERT_ISSUES = """
INSERT INTO tracker_issue (
    id, workspace, provider, external_id, version,
    key, url, title, state, state_reason, kind, priority, blocker, labels, estimate, assignees,
    milestone, fix_versions, project, parent_key, is_pull_request, merged, created_at,
    closed_at, deleted, cycle
)
SELECT id, workspace, provider, external_id, 1,
       key, url, title, state, state_reason, kind, priority, blocker, labels, estimate, assignees,
       milestone, fix_versions, project, parent_key, is_pull_request, merged, created_at,
       closed_at, deleted, cycle
FROM jsonb_populate_recordset(NULL::tracker_issue, $1::jsonb)
"""
# The bulk path inserts only issues it found missing under its lock; a row that appeared since
# (a replay racing the normaliser) fails the batch, which then goes one delivery at a time.
INSERT_NEW_ISSUES = f"{_INSERT_ISSUES}RETURNING *\n"
# UPDATE_ISSUE for many issues at once, their rows (id and MUTABLE_FIELDS) as JSON.
UPDATE_ISSUES = """
UPDATE tracker_issue AS t SET
    key = r.key, url = r.url, title = r.title, state = r.state, state_reason = r.state_reason,
    kind = r.kind, priority = r.priority, blocker = r.blocker, labels = r.labels,
    estimate = r.estimate, assignees = r.assignees, milestone = r.milestone,
    fix_versions = r.fix_versions, project = r.project, parent_key = r.parent_key,
    is_pull_request = r.is_pull_request, merged = r.merged, created_at = r.created_at,
    closed_at = r.closed_at, deleted = r.deleted, cycle = r.cycle,
    version = t.version + 1, updated_at = now()
FROM jsonb_populate_recordset(NULL::tracker_issue, $1::jsonb) AS r
WHERE t.id = r.id
RETURNING t.*
"""
# One delivery at a time: a row inserted meanwhile by another is found on the next pass.
INSERT_ISSUE = f"""{_INSERT_ISSUES}ON CONFLICT (workspace, provider, external_id) DO NOTHING
RETURNING *
"""

# One unique-index lookup per key, in the keys' order (the caller sorts them, so batches lock in
# one order), each planned for its values (migration 0004).
LOCK_MANY = "SELECT * FROM tracker_issues_locked($1, $2::text[], $3::text[])"

LINKS_OF_MANY = """
SELECT tracker_issue_id, target, target_key, by FROM tracker_link
WHERE tracker_issue_id = ANY($1::uuid[])
"""

UPDATE_ISSUE = """
UPDATE tracker_issue SET
    key = $2, url = $3, title = $4, state = $5, state_reason = $6, kind = $7, priority = $8,
    blocker = $9, labels = $10, estimate = $11, assignees = $12, milestone = $13,
    fix_versions = $14, project = $15, parent_key = $16, is_pull_request = $17, merged = $18,
    created_at = $19, closed_at = $20, deleted = $21, cycle = $22,
    version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *
"""

BUMP_VERSION = """
UPDATE tracker_issue SET version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *
"""

SELECT_LINKS = """
SELECT target, target_key, by FROM tracker_link
WHERE tracker_issue_id = $1
ORDER BY target, target_key
"""

# Convention links follow the issue: those it no longer names go, new ones come. An api link of
# the same target is left as it is (explicit links win).
DELETE_STALE_CONVENTION_LINKS = """
DELETE FROM tracker_link
WHERE tracker_issue_id = $1 AND by = 'convention'
  AND NOT (target = 'item' AND target_key = ANY($2::text[]))
  AND NOT (target = 'launch' AND target_key = ANY($3::text[]))
"""

INSERT_CONVENTION_LINKS = """
INSERT INTO tracker_link (workspace, tracker_issue_id, target, target_key, by)
SELECT $1::text, $2::uuid, 'item', key, 'convention' FROM unnest($3::text[]) AS key
UNION ALL
SELECT $1::text, $2::uuid, 'launch', key, 'convention' FROM unnest($4::text[]) AS key
ON CONFLICT (tracker_issue_id, target, target_key) DO NOTHING
"""

# INSERT_CONVENTION_LINKS for many issues: one row per (workspace, issue, target, key).
INSERT_CONVENTION_LINKS_MANY = """
INSERT INTO tracker_link (workspace, tracker_issue_id, target, target_key, by)
SELECT workspace, issue_id, target, key, 'convention'
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) AS l (workspace, issue_id, target, key)
ON CONFLICT (tracker_issue_id, target, target_key) DO NOTHING
"""

DELETE_CONVENTION_LINKS = """
DELETE FROM tracker_link WHERE tracker_issue_id = $1 AND by = 'convention'
"""

UPSERT_API_LINK = """
INSERT INTO tracker_link (workspace, tracker_issue_id, target, target_key, by)
VALUES ($1, $2, $3, $4, 'api')
ON CONFLICT (tracker_issue_id, target, target_key) DO UPDATE SET by = 'api'
"""

DELETE_LINK = """
DELETE FROM tracker_link
WHERE tracker_issue_id = $1 AND target = $2 AND target_key = $3
RETURNING by
"""

SELECT_ISSUE = f"""
SELECT i.*, {_LINKS}
FROM tracker_issue i
WHERE i.id = $1 AND NOT i.deleted
"""  # noqa: S608 - only the constant subquery is formatted in

LIST_ISSUES = f"""
SELECT i.*, {_LINKS}
FROM tracker_issue i
WHERE NOT i.deleted
  AND ($1::text IS NULL OR i.provider = $1)
  AND ($2::text IS NULL OR i.state = $2)
  AND ($3::text IS NULL OR i.kind = $3)
  AND ($4::text IS NULL OR i.priority = $4)
  AND ($5::boolean IS NULL OR i.blocker = $5)
  AND ($6::text IS NULL OR EXISTS (
        SELECT 1 FROM tracker_link l
        WHERE l.tracker_issue_id = i.id AND l.target = 'item' AND l.target_key = $6))
  AND ($7::text IS NULL OR EXISTS (
        SELECT 1 FROM tracker_link l
        WHERE l.tracker_issue_id = i.id AND l.target = 'launch' AND l.target_key = $7))
  AND ($8::text IS NULL OR i.cycle->>'id' = $8 OR i.cycle->>'number' = $8
       OR lower(i.cycle->>'name') = lower($8))
  AND ($9::timestamptz IS NULL OR (i.updated_at, i.id) < ($9, $10::uuid))
ORDER BY i.updated_at DESC, i.id DESC
LIMIT $11
"""  # noqa: S608 - only the constant subquery is formatted in

MARK_DELETED = """
UPDATE tracker_issue SET deleted = true, blocker = false, version = version + 1, updated_at = now()
WHERE id = $1
RETURNING version
"""

# --- delivery roll-ups of items and launches ----------------------------------------------------

_ROLLUP = """
    count(*) AS issues_total,
    count(*) FILTER (WHERE i.state = 'open') AS issues_open,
    count(*) FILTER (WHERE i.state = 'closed') AS issues_closed,
    COALESCE(sum(i.estimate), 0) AS estimate_total,
    COALESCE(sum(i.estimate) FILTER (WHERE i.state = 'closed'), 0) AS estimate_done
"""

# Per item key: the issues linked to it, whatever made the link.
ITEM_ROLLUPS = f"""
SELECT l.target_key AS key, {_ROLLUP}
FROM tracker_link l JOIN tracker_issue i ON i.id = l.tracker_issue_id AND NOT i.deleted
WHERE l.target = 'item' AND l.target_key = ANY($1::text[])
GROUP BY l.target_key
"""  # noqa: S608 - only the constant aggregates are formatted in

# Per launch key: the issues linked to the launch or to any of its items, each counted once
# (UNION drops the repeats). Launch keys are matched case-insensitively, as launches are.
LAUNCH_ROLLUPS = f"""
WITH launches AS (SELECT id, key FROM launch WHERE key = ANY($1::text[])),
linked AS (
    SELECT la.key, l.tracker_issue_id
    FROM launches la
    JOIN tracker_link l ON l.target = 'launch' AND upper(l.target_key) = upper(la.key)
    UNION
    SELECT la.key, l.tracker_issue_id
    FROM launches la
    JOIN item k ON k.launch_id = la.id
    JOIN tracker_link l ON l.target = 'item' AND l.target_key = k.key
)
SELECT linked.key, {_ROLLUP}
FROM linked JOIN tracker_issue i ON i.id = linked.tracker_issue_id AND NOT i.deleted
GROUP BY linked.key
"""  # noqa: S608 - only the constant aggregates are formatted in

# --- the Jira epic/parent convention ----------------------------------------------------------

# The item links of stored Jira issues keyed `$2`, with the labels that may have made them.
PARENT_ITEM_LINKS = """
SELECT p.labels, l.target_key, l.by
FROM tracker_issue p JOIN tracker_link l ON l.tracker_issue_id = p.id AND l.target = 'item'
WHERE p.workspace = $1 AND p.provider = 'jira' AND p.key = $2 AND NOT p.deleted
ORDER BY l.target_key
"""

LOCK_JIRA_CHILDREN = """
SELECT * FROM tracker_issue
WHERE workspace = $1 AND provider = 'jira' AND parent_key = $2 AND NOT deleted
ORDER BY id
FOR UPDATE
"""

# --- GitLab API access of a source, and the milestone titles read with it ---------------------

SOURCE_PROVIDER = "SELECT provider FROM webhook_source WHERE id = $1"

SELECT_API_ACCESS = "SELECT * FROM source_api_access WHERE source_id = $1"

UPSERT_API_ACCESS = """
INSERT INTO source_api_access (source_id, workspace, base_url, token)
VALUES ($1, $2, $3, $4)
ON CONFLICT (source_id) DO UPDATE
SET base_url = EXCLUDED.base_url, token = EXCLUDED.token, updated_at = now()
RETURNING *
"""

DELETE_API_ACCESS = "DELETE FROM source_api_access WHERE source_id = $1"

# Titles read with another token or from another GitLab may not hold any more.
FORGET_MILESTONES = "DELETE FROM gitlab_milestone WHERE source_id = $1"

SELECT_MILESTONE = """
SELECT title, fetched_at > now() - $3::float8 * interval '1 second' AS fresh
FROM gitlab_milestone
WHERE source_id = $1 AND milestone_id = $2
"""

UPSERT_MILESTONE = """
INSERT INTO gitlab_milestone (workspace, source_id, milestone_id, title)
VALUES ($1, $2, $3, $4)
ON CONFLICT (source_id, milestone_id) DO UPDATE
SET title = EXCLUDED.title, fetched_at = now()
"""
