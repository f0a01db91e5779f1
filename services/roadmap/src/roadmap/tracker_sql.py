"""Every SQL statement of tracker issues and their links (row-level security scopes each one)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from roadmap.tracker_rules import MUTABLE_FIELDS

# The JSON objects of the issues a batch writes, their keys in the order `issue_rows` is given
# the values (arrays of arrays, such as each issue's labels, cannot be sent as parameters).
WRITTEN = ("id", "workspace", "provider", "external_id", "version", "updated_at", *MUTABLE_FIELDS)


def issue_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Issues' rows as the objects `jsonb_populate_recordset` reads."""
    return [
        {name: str(row[name]) if name == "id" else row[name] for name in WRITTEN} for row in rows
    ]


_LINKS = """
    COALESCE((
        SELECT jsonb_agg(
            jsonb_build_object('target', l.target, 'key', l.target_key, 'by', l.by)
            ORDER BY l.target, l.target_key)
        FROM tracker_link l WHERE l.tracker_issue_id = i.id
    ), '[]'::jsonb) AS links
"""

# The transaction's time: every version a batch writes carries it, as `now()` would.
NOW = "SELECT now()"

# One unique-index lookup per key, in the keys' order (the caller sorts them, so batches lock in
# one order), each planned for its values (migration 0004).
LOCK_MANY = "SELECT * FROM tracker_issues_locked($1, $2::text[], $3::text[])"

# The stored Jira children of these keys, which a batch may recompute: locked, in one order.
LOCK_JIRA_CHILDREN = """
SELECT * FROM tracker_issue
WHERE workspace = $1 AND provider = 'jira' AND parent_key = ANY($2::text[]) AND NOT deleted
ORDER BY id
FOR UPDATE
"""

# The stored Jira issues of these keys, whose links their children inherit: read, not written.
JIRA_KEYED = """
SELECT * FROM tracker_issue
WHERE workspace = $1 AND provider = 'jira' AND key = ANY($2::text[]) AND NOT deleted
"""

LINKS_OF_MANY = """
SELECT tracker_issue_id, target, target_key, by FROM tracker_link
WHERE tracker_issue_id = ANY($1::uuid[])
"""

LOCK_BY_URL = """
SELECT provider, external_id FROM tracker_issue
WHERE workspace = $1 AND url = $2 AND NOT deleted
ORDER BY updated_at DESC, id DESC
LIMIT 1
FOR UPDATE
"""

# New issues, found missing under the batch's lock; one inserted meanwhile (a replay racing the
# normaliser) is not returned, and the batch is retried.
INSERT_ISSUES = """
INSERT INTO tracker_issue (
    id, workspace, provider, external_id, version, updated_at,
    key, url, title, state, state_reason, kind, priority, labels, estimate, assignees,
    milestone, fix_versions, project, parent_key, is_pull_request, merged, created_at,
    closed_at, deleted, cycle
)
SELECT id, workspace, provider, external_id, version, updated_at,
       key, url, title, state, state_reason, kind, priority, labels, estimate, assignees,
       milestone, fix_versions, project, parent_key, is_pull_request, merged, created_at,
       closed_at, deleted, cycle
FROM jsonb_populate_recordset(NULL::tracker_issue, $1::jsonb)
ON CONFLICT (workspace, provider, external_id) DO NOTHING
RETURNING id
"""

# The end state of stored issues the batch changed, locked by it.
UPDATE_ISSUES = """
UPDATE tracker_issue AS t SET
    key = r.key, url = r.url, title = r.title, state = r.state, state_reason = r.state_reason,
    kind = r.kind, priority = r.priority, labels = r.labels,
    estimate = r.estimate, assignees = r.assignees, milestone = r.milestone,
    fix_versions = r.fix_versions, project = r.project, parent_key = r.parent_key,
    is_pull_request = r.is_pull_request, merged = r.merged, created_at = r.created_at,
    closed_at = r.closed_at, deleted = r.deleted, cycle = r.cycle,
    version = r.version, updated_at = r.updated_at
FROM jsonb_populate_recordset(NULL::tracker_issue, $1::jsonb) AS r
WHERE t.id = r.id
"""

# Links the batch removed: one row per (issue, target, key).
DELETE_LINKS = """
DELETE FROM tracker_link AS l
USING unnest($1::uuid[], $2::text[], $3::text[]) AS d (issue_id, target, key)
WHERE l.tracker_issue_id = d.issue_id AND l.target = d.target AND l.target_key = d.key
"""

# Links the batch made, or whose maker changed (an explicit link over a convention one).
UPSERT_LINKS = """
INSERT INTO tracker_link (workspace, tracker_issue_id, target, target_key, by)
SELECT $1::text, issue_id, target, key, by
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[]) AS l (issue_id, target, key, by)
ON CONFLICT (tracker_issue_id, target, target_key) DO UPDATE SET by = EXCLUDED.by
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
  AND ($5::text IS NULL OR EXISTS (
        SELECT 1 FROM tracker_link l
        WHERE l.tracker_issue_id = i.id AND l.target = 'item' AND l.target_key = $5))
  AND ($6::text IS NULL OR EXISTS (
        SELECT 1 FROM tracker_link l
        WHERE l.tracker_issue_id = i.id AND l.target = 'launch' AND l.target_key = $6))
  AND ($7::text IS NULL OR i.cycle->>'id' = $7 OR i.cycle->>'number' = $7
       OR lower(i.cycle->>'name') = lower($7))
  AND ($8::timestamptz IS NULL OR (i.updated_at, i.id) < ($8, $9::uuid))
ORDER BY i.updated_at DESC, i.id DESC
LIMIT $10
"""  # noqa: S608 - only the constant subquery is formatted in

# --- roll-ups of items and launches -------------------------------------------------------------

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

# Per (source, milestone id): the source's API access if it has one, and the title read with it
# (`fresh` within $3 seconds).
MILESTONES_OF = """
SELECT r.source_id, r.milestone_id, a.workspace, a.base_url, a.token, m.title,
       m.fetched_at > now() - $3::float8 * interval '1 second' AS fresh
FROM unnest($1::uuid[], $2::bigint[]) AS r (source_id, milestone_id)
LEFT JOIN source_api_access a ON a.source_id = r.source_id
LEFT JOIN gitlab_milestone m ON m.source_id = a.source_id AND m.milestone_id = r.milestone_id
"""

UPSERT_MILESTONE = """
INSERT INTO gitlab_milestone (workspace, source_id, milestone_id, title)
VALUES ($1, $2, $3, $4)
ON CONFLICT (source_id, milestone_id) DO UPDATE
SET title = EXCLUDED.title, fetched_at = now()
"""
