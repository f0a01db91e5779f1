"""SQL of the facts: the typed latest state of each aggregate the signals read."""

from __future__ import annotations

# Version gate shared by every state-carrying event; "INSERT 0 1" means the event was newer.
UPSERT_PROJECTION = """
INSERT INTO projection (workspace, aggregate, id, version, deleted, state, event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (workspace, aggregate, id) DO UPDATE
SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, state = EXCLUDED.state,
    event_id = EXCLUDED.event_id, updated_at = now()
WHERE projection.version < EXCLUDED.version
"""

SUMMARY = """
SELECT aggregate, count(*) AS live FROM projection
WHERE NOT deleted GROUP BY aggregate
"""

FEEDBACK_BEFORE = "SELECT group_id, item_keys FROM feedback_fact WHERE workspace = $1 AND id = $2"
UPSERT_FEEDBACK = """
INSERT INTO feedback_fact (workspace, id, group_id, account_key, account_external_id, priority,
                           sentiment, status, created_at, item_keys, tags)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (workspace, id) DO UPDATE
SET group_id = EXCLUDED.group_id, account_key = EXCLUDED.account_key,
    account_external_id = EXCLUDED.account_external_id, priority = EXCLUDED.priority,
    sentiment = EXCLUDED.sentiment, status = EXCLUDED.status, created_at = EXCLUDED.created_at,
    item_keys = EXCLUDED.item_keys, tags = EXCLUDED.tags
"""
DELETE_FEEDBACK = "DELETE FROM feedback_fact WHERE workspace = $1 AND id = $2"
DELETE_FEEDBACK_ITEMS = "DELETE FROM feedback_item WHERE workspace = $1 AND feedback_id = $2"
INSERT_FEEDBACK_ITEMS = """
INSERT INTO feedback_item (workspace, feedback_id, item_key, created_at, negative, counted)
SELECT $1, $2, key, $4, $5, $6 FROM unnest($3::text[]) AS key
"""
GROUPS_OF_ACCOUNT = """
SELECT DISTINCT group_id FROM feedback_fact WHERE workspace = $1 AND account_external_id = $2
"""
GROUPS_OF_ITEM = """
SELECT DISTINCT f.group_id FROM feedback_item AS fi
JOIN feedback_fact AS f ON f.workspace = fi.workspace AND f.id = fi.feedback_id
WHERE fi.workspace = $1 AND fi.item_key = $2
"""

UPSERT_ACCOUNT = """
INSERT INTO account_fact (workspace, external_id, arr) VALUES ($1, $2, $3)
ON CONFLICT (workspace, external_id) DO UPDATE SET arr = EXCLUDED.arr
"""

UPSERT_OBJECTIVE = """
INSERT INTO objective_fact (workspace, id, name, weight, active) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (workspace, id) DO UPDATE
SET name = EXCLUDED.name, weight = EXCLUDED.weight, active = EXCLUDED.active
"""
DELETE_OBJECTIVE = "DELETE FROM objective_fact WHERE workspace = $1 AND id = $2"
ITEMS_OF_OBJECTIVE = (
    "SELECT id FROM item_fact WHERE workspace = $1 AND objective_ids @> ARRAY[$2::uuid]"
)

ITEM_BEFORE = """
SELECT key, status, area, launch_key, shipped_at FROM item_fact WHERE workspace = $1 AND id = $2
"""
UPSERT_ITEM = """
INSERT INTO item_fact (workspace, id, key, title, status, effort, area, objective_ids,
                       launch_key, shipped_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (workspace, id) DO UPDATE
SET key = EXCLUDED.key, title = EXCLUDED.title, status = EXCLUDED.status,
    effort = EXCLUDED.effort, area = EXCLUDED.area, objective_ids = EXCLUDED.objective_ids,
    launch_key = EXCLUDED.launch_key, shipped_at = EXCLUDED.shipped_at
"""
DELETE_ITEM = "DELETE FROM item_fact WHERE workspace = $1 AND id = $2"
# A key freed by a deleted item may be reused by a new one before the delete arrives.
FREE_ITEM_KEY = "DELETE FROM item_fact WHERE workspace = $1 AND key = $2 AND id <> $3 RETURNING id"
ALL_GROUPS = "SELECT DISTINCT group_id FROM feedback_fact WHERE workspace = $1"
ALL_ITEMS = "SELECT id FROM item_fact WHERE workspace = $1"
ITEM_IDS_OF_KEYS = "SELECT id FROM item_fact WHERE workspace = $1 AND key = ANY($2::text[])"

LAUNCH_BEFORE = "SELECT key FROM launch_fact WHERE workspace = $1 AND id = $2"
UPSERT_LAUNCH = """
INSERT INTO launch_fact (workspace, id, key, name, status, target_date, item_keys, checklist)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (workspace, id) DO UPDATE
SET key = EXCLUDED.key, name = EXCLUDED.name, status = EXCLUDED.status,
    target_date = EXCLUDED.target_date, item_keys = EXCLUDED.item_keys,
    checklist = EXCLUDED.checklist
"""
DELETE_LAUNCH = "DELETE FROM launch_fact WHERE workspace = $1 AND id = $2 RETURNING key"
FREE_LAUNCH_KEY = "DELETE FROM launch_fact WHERE workspace = $1 AND key = $2 AND id <> $3"

ISSUE_BEFORE = "SELECT item_keys, launch_keys FROM issue_fact WHERE workspace = $1 AND id = $2"
# Issues (`facts.issue_row`), as JSON: arrays of arrays must be rectangular. One statement for
# any number, so that the facts' statement triggers (migration 0007) link them set-wise.
UPSERT_ISSUES = """
INSERT INTO issue_fact (workspace, id, key, state, kind, priority, labels, item_keys,
                        launch_keys, closed_at)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
    workspace text, id uuid, key text, state text, kind text, priority text, labels text[],
    item_keys text[], launch_keys text[], closed_at timestamptz
)
ON CONFLICT (workspace, id) DO UPDATE
SET key = EXCLUDED.key, state = EXCLUDED.state, kind = EXCLUDED.kind,
    priority = EXCLUDED.priority, labels = EXCLUDED.labels, item_keys = EXCLUDED.item_keys,
    launch_keys = EXCLUDED.launch_keys, closed_at = EXCLUDED.closed_at
"""
DELETE_ISSUE = "DELETE FROM issue_fact WHERE workspace = $1 AND id = $2"
