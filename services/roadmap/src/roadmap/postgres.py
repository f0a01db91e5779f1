"""Every SQL statement of the roadmap service's objectives, items and launches."""

from __future__ import annotations

# --- workspace settings -----------------------------------------------------------------------

# Hands out the next item number; the row lock serialises concurrent creations per workspace.
NEXT_ITEM_NUMBER = """
INSERT INTO workspace_settings AS s (workspace, last_item_number) VALUES ($1, 1)
ON CONFLICT (workspace) DO UPDATE SET last_item_number = s.last_item_number + 1
RETURNING item_key_prefix, last_item_number
"""

SELECT_SETTINGS = "SELECT * FROM workspace_settings"

SET_ITEM_KEY_PREFIX = """
INSERT INTO workspace_settings AS s (workspace, item_key_prefix) VALUES ($1, $2)
ON CONFLICT (workspace) DO UPDATE SET item_key_prefix = $2
RETURNING item_key_prefix
"""

SET_CHECKLIST_TEMPLATE = """
INSERT INTO workspace_settings AS s (workspace, checklist_template) VALUES ($1, $2)
ON CONFLICT (workspace) DO UPDATE SET checklist_template = $2
RETURNING checklist_template
"""

# --- objectives -------------------------------------------------------------------------------

INSERT_OBJECTIVE = """
INSERT INTO objective (
    id, workspace, name, description, weight, status, period_start, period_end, parent_id
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING *
"""

SELECT_OBJECTIVE = "SELECT * FROM objective WHERE id = $1"

LOCK_OBJECTIVE = "SELECT * FROM objective WHERE id = $1 FOR UPDATE"

# Which of the ids name objectives of the transaction's workspace (row-level security decides).
KNOWN_OBJECTIVES = "SELECT id FROM objective WHERE id = ANY($1::uuid[])"

UPDATE_OBJECTIVE = """
UPDATE objective
SET name = $2, description = $3, weight = $4, status = $5, period_start = $6, period_end = $7,
    parent_id = $8, version = version + 1, updated_at = now()
WHERE id = $1
RETURNING *
"""

# The ancestors of an objective, itself included: a parent must not be among them.
OBJECTIVE_ANCESTORS = """
WITH RECURSIVE up AS (
    SELECT id, parent_id FROM objective WHERE id = $1
    UNION
    SELECT o.id, o.parent_id FROM objective o JOIN up ON o.id = up.parent_id
)
SELECT id FROM up
"""

ORPHAN_CHILD_OBJECTIVES = """
UPDATE objective SET parent_id = NULL, version = version + 1, updated_at = now()
WHERE parent_id = $1
RETURNING *
"""

DELETE_OBJECTIVE = "DELETE FROM objective WHERE id = $1"

LIST_OBJECTIVES = """
SELECT * FROM objective
WHERE ($1::text IS NULL OR status = $1)
    AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""

# --- items ------------------------------------------------------------------------------------

_ITEM_VIEW = """
SELECT i.*, l.key AS launch_key, p.key AS parent_key
FROM item i LEFT JOIN launch l ON l.id = i.launch_id LEFT JOIN item p ON p.id = i.parent_id
"""

INSERT_ITEM = """
WITH i AS (
    INSERT INTO item (
        id, workspace, key, title, description, status, horizon, effort, area, objective_ids,
        launch_id, parent_id, shipped_at
    ) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
              CASE WHEN $6 = 'shipped' THEN now() END)
    RETURNING *
)
SELECT i.*, l.key AS launch_key, p.key AS parent_key
FROM i LEFT JOIN launch l ON l.id = i.launch_id LEFT JOIN item p ON p.id = i.parent_id
"""

SELECT_ITEM = _ITEM_VIEW + "WHERE i.id = $1"

SELECT_ITEM_BY_KEY = _ITEM_VIEW + "WHERE i.key = $1"

SELECT_ITEMS = _ITEM_VIEW + "WHERE i.id = ANY($1::uuid[]) ORDER BY i.key"

LOCK_ITEM = "SELECT * FROM item WHERE id = $1 FOR UPDATE"

# `shipped_at` is set when the status becomes shipped, and cleared when it leaves shipped.
UPDATE_ITEM = """
WITH i AS (
    UPDATE item AS i
    SET title = $2, description = $3, status = $4, horizon = $5, effort = $6, area = $7,
        objective_ids = $8, launch_id = $9, parent_id = $10,
        shipped_at = CASE
            WHEN $4 <> 'shipped' THEN NULL
            WHEN i.status = 'shipped' THEN i.shipped_at
            ELSE now() END,
        version = i.version + 1, updated_at = now()
    WHERE i.id = $1
    RETURNING i.*
)
SELECT i.*, l.key AS launch_key, p.key AS parent_key
FROM i LEFT JOIN launch l ON l.id = i.launch_id LEFT JOIN item p ON p.id = i.parent_id
"""

# The ancestors of an item, itself included: a parent must not be among them.
ITEM_ANCESTORS = """
WITH RECURSIVE up AS (
    SELECT id, parent_id FROM item WHERE id = $1
    UNION
    SELECT i.id, i.parent_id FROM item i JOIN up ON i.id = up.parent_id
)
SELECT id FROM up
"""

INSERT_STATUS_CHANGE = """
INSERT INTO item_status_change (id, workspace, item_id, from_status, to_status)
VALUES ($1, $2, $3, $4, $5)
"""

SELECT_HISTORY = """
SELECT from_status, to_status, changed_at FROM item_status_change
WHERE item_id = $1 ORDER BY changed_at, id
"""

DELETE_ITEM = "DELETE FROM item WHERE id = $1"

# New versions of the items that referred to something about to go: returned as ids.
UNLINK_OBJECTIVE = """
UPDATE item SET objective_ids = array_remove(objective_ids, $1), version = version + 1,
    updated_at = now()
WHERE objective_ids @> ARRAY[$1::uuid]
RETURNING id
"""

UNLINK_LAUNCH = """
UPDATE item SET launch_id = NULL, version = version + 1, updated_at = now()
WHERE launch_id = $1
RETURNING id
"""

ORPHAN_CHILD_ITEMS = """
UPDATE item SET parent_id = NULL, version = version + 1, updated_at = now()
WHERE parent_id = $1
RETURNING id
"""

LIST_ITEMS = (
    _ITEM_VIEW
    + """
WHERE ($1::text IS NULL OR i.status = $1)
    AND ($2::text IS NULL OR i.horizon = $2)
    AND ($3::uuid IS NULL OR i.objective_ids @> ARRAY[$3::uuid])
    AND ($4::text IS NULL OR upper(l.key) = upper($4))
    AND ($5::text IS NULL OR i.area = $5)
    AND ($6::timestamptz IS NULL OR (i.created_at, i.id) < ($6, $7::uuid))
ORDER BY i.created_at DESC, i.id DESC
LIMIT $8
"""
)

# --- launches ---------------------------------------------------------------------------------

INSERT_LAUNCH = """
INSERT INTO launch AS l (id, workspace, key, name, target_date, status, checklist)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (workspace, upper(key)) DO NOTHING
RETURNING l.*, '{}'::text[] AS item_keys
"""

# Launches are read with the keys of their items, in key order.
SELECT_LAUNCH = """
SELECT l.*, ARRAY(SELECT k.key FROM item k WHERE k.launch_id = l.id ORDER BY k.key) AS item_keys
FROM launch l WHERE l.id = $1
"""

SELECT_LAUNCH_BY_KEY = """
SELECT l.*, ARRAY(SELECT k.key FROM item k WHERE k.launch_id = l.id ORDER BY k.key) AS item_keys
FROM launch l WHERE upper(l.key) = upper($1)
"""

LOCK_LAUNCH = "SELECT * FROM launch WHERE id = $1 FOR UPDATE"

UPDATE_LAUNCH = """
UPDATE launch AS l
SET name = $2, target_date = $3, status = $4, checklist = $5, version = l.version + 1,
    updated_at = now()
WHERE l.id = $1
RETURNING l.*, ARRAY(SELECT k.key FROM item k WHERE k.launch_id = l.id ORDER BY k.key) AS item_keys
"""

# A new version of launches whose items changed.
BUMP_LAUNCHES = """
UPDATE launch AS l SET version = l.version + 1, updated_at = now()
WHERE l.id = ANY($1::uuid[])
RETURNING l.*, ARRAY(SELECT k.key FROM item k WHERE k.launch_id = l.id ORDER BY k.key) AS item_keys
"""

DELETE_LAUNCH = "DELETE FROM launch WHERE id = $1"

LIST_LAUNCHES = """
SELECT l.*, ARRAY(SELECT k.key FROM item k WHERE k.launch_id = l.id ORDER BY k.key) AS item_keys
FROM launch l
WHERE ($1::text IS NULL OR l.status = $1)
    AND ($2::timestamptz IS NULL OR (l.created_at, l.id) < ($2, $3::uuid))
ORDER BY l.created_at DESC, l.id DESC
LIMIT $4
"""
