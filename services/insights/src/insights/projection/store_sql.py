"""SQL of the projection store: a batch's facts read and written set-wise, a statement per table.

Rows go in as JSON (`jsonb_to_recordset`): their array columns differ in length from row to
row, which arrays of arrays cannot carry. Keys come as parallel arrays (`unnest`), each look-up
by a primary key or an index.
"""

from __future__ import annotations

# The rows of each fact table by id, with their version gates (`by_id`), and for items and
# launches the rows that hold the keys the batch's upserts take (the gate left out).
LOAD: dict[str, str] = {
    "feedback": """
SELECT k.workspace, k.id, p.version, true AS by_id, f.id IS NOT NULL AS held, f.group_id,
       f.account_key, f.account_external_id, f.priority, f.sentiment, f.status, f.created_at,
       f.item_keys, f.tags
FROM unnest($1::text[], $2::uuid[]) AS k (workspace, id)
LEFT JOIN projection AS p
    ON p.workspace = k.workspace AND p.aggregate = 'feedback' AND p.id = k.id::text
LEFT JOIN feedback_fact AS f ON f.workspace = k.workspace AND f.id = k.id
""",
    "account": """
SELECT k.workspace, k.id, p.version, true AS by_id, a.external_id IS NOT NULL AS held, a.arr
FROM unnest($1::text[], $2::text[]) AS k (workspace, id)
LEFT JOIN projection AS p ON p.workspace = k.workspace AND p.aggregate = 'account' AND p.id = k.id
LEFT JOIN account_fact AS a ON a.workspace = k.workspace AND a.external_id = k.id
""",
    "objective": """
SELECT k.workspace, k.id, p.version, true AS by_id, o.id IS NOT NULL AS held, o.name, o.weight,
       o.active
FROM unnest($1::text[], $2::uuid[]) AS k (workspace, id)
LEFT JOIN projection AS p
    ON p.workspace = k.workspace AND p.aggregate = 'objective' AND p.id = k.id::text
LEFT JOIN objective_fact AS o ON o.workspace = k.workspace AND o.id = k.id
""",
    "item": """
SELECT k.workspace, k.id, p.version, true AS by_id, i.id IS NOT NULL AS held, i.key, i.title,
       i.status, i.effort, i.area, i.objective_ids, i.launch_key, i.shipped_at
FROM unnest($1::text[], $2::uuid[]) AS k (workspace, id)
LEFT JOIN projection AS p
    ON p.workspace = k.workspace AND p.aggregate = 'item' AND p.id = k.id::text
LEFT JOIN item_fact AS i ON i.workspace = k.workspace AND i.id = k.id
UNION ALL
SELECT i.workspace, i.id, NULL, false, true, i.key, i.title, i.status, i.effort, i.area,
       i.objective_ids, i.launch_key, i.shipped_at
FROM unnest($3::text[], $4::text[]) AS k (workspace, key)
JOIN item_fact AS i ON i.workspace = k.workspace AND i.key = k.key
""",
    "launch": """
SELECT k.workspace, k.id, p.version, true AS by_id, l.id IS NOT NULL AS held, l.key, l.name,
       l.status, l.target_date, l.item_keys, l.checklist
FROM unnest($1::text[], $2::uuid[]) AS k (workspace, id)
LEFT JOIN projection AS p
    ON p.workspace = k.workspace AND p.aggregate = 'launch' AND p.id = k.id::text
LEFT JOIN launch_fact AS l ON l.workspace = k.workspace AND l.id = k.id
UNION ALL
SELECT l.workspace, l.id, NULL, false, true, l.key, l.name, l.status, l.target_date,
       l.item_keys, l.checklist
FROM unnest($3::text[], $4::text[]) AS k (workspace, key)
JOIN launch_fact AS l ON l.workspace = k.workspace AND l.key = k.key
""",
    "tracker_issue": """
SELECT k.workspace, k.id, p.version, true AS by_id, i.id IS NOT NULL AS held, i.key, i.state,
       i.kind, i.priority, i.labels, i.item_keys, i.launch_keys, i.closed_at
FROM unnest($1::text[], $2::uuid[]) AS k (workspace, id)
LEFT JOIN projection AS p
    ON p.workspace = k.workspace AND p.aggregate = 'tracker_issue' AND p.id = k.id::text
LEFT JOIN issue_fact AS i ON i.workspace = k.workspace AND i.id = k.id
""",
}

# The columns of each fact table after its key, as `rules` keeps them in a row.
COLUMNS: dict[str, tuple[str, ...]] = {
    "feedback": (
        "group_id",
        "account_key",
        "account_external_id",
        "priority",
        "sentiment",
        "status",
        "created_at",
        "item_keys",
        "tags",
    ),
    "account": ("arr",),
    "objective": ("name", "weight", "active"),
    "item": (
        "key",
        "title",
        "status",
        "effort",
        "area",
        "objective_ids",
        "launch_key",
        "shipped_at",
    ),
    "launch": ("key", "name", "status", "target_date", "item_keys", "checklist"),
    "tracker_issue": (
        "key",
        "state",
        "kind",
        "priority",
        "labels",
        "item_keys",
        "launch_keys",
        "closed_at",
    ),
}

PUT_PROJECTIONS = """
INSERT INTO projection (workspace, aggregate, id, version, deleted, state, event_id)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
    workspace text, aggregate text, id text, version integer, deleted boolean, state jsonb,
    event_id uuid
)
ON CONFLICT (workspace, aggregate, id) DO UPDATE
SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, state = EXCLUDED.state,
    event_id = EXCLUDED.event_id, updated_at = now()
"""

# Rows removed ($1, $2 the workspaces and ids); for feedback, also the feedback_item rows of
# every feedback written ($3, $4), which are put again with it.
REMOVE: dict[str, str] = {
    "feedback": """
WITH items AS (
    DELETE FROM feedback_item AS fi USING unnest($3::text[], $4::uuid[]) AS k (workspace, id)
    WHERE fi.workspace = k.workspace AND fi.feedback_id = k.id
)
DELETE FROM feedback_fact AS f USING unnest($1::text[], $2::uuid[]) AS k (workspace, id)
WHERE f.workspace = k.workspace AND f.id = k.id
""",
    "objective": """
DELETE FROM objective_fact AS o USING unnest($1::text[], $2::uuid[]) AS k (workspace, id)
WHERE o.workspace = k.workspace AND o.id = k.id
""",
    "item": """
DELETE FROM item_fact AS i USING unnest($1::text[], $2::uuid[]) AS k (workspace, id)
WHERE i.workspace = k.workspace AND i.id = k.id
""",
    "launch": """
DELETE FROM launch_fact AS l USING unnest($1::text[], $2::uuid[]) AS k (workspace, id)
WHERE l.workspace = k.workspace AND l.id = k.id
""",
    "tracker_issue": """
DELETE FROM issue_fact AS i USING unnest($1::text[], $2::uuid[]) AS k (workspace, id)
WHERE i.workspace = k.workspace AND i.id = k.id
""",
}

# Rows put ($1: JSON records, each its workspace, id and columns). Issues in one statement for
# any number, so that migration 0007's statement triggers link them set-wise.
PUT: dict[str, str] = {
    "feedback": """
WITH r AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
        workspace text, id uuid, group_id uuid, account_key text, account_external_id text,
        priority text, sentiment double precision, status text, created_at timestamptz,
        item_keys text[], tags text[], negative boolean, counted boolean
    )
), facts AS (
    INSERT INTO feedback_fact (workspace, id, group_id, account_key, account_external_id,
                               priority, sentiment, status, created_at, item_keys, tags)
    SELECT workspace, id, group_id, account_key, account_external_id, priority, sentiment,
           status, created_at, item_keys, tags
    FROM r
    ON CONFLICT (workspace, id) DO UPDATE
    SET group_id = EXCLUDED.group_id, account_key = EXCLUDED.account_key,
        account_external_id = EXCLUDED.account_external_id, priority = EXCLUDED.priority,
        sentiment = EXCLUDED.sentiment, status = EXCLUDED.status,
        created_at = EXCLUDED.created_at, item_keys = EXCLUDED.item_keys, tags = EXCLUDED.tags
)
INSERT INTO feedback_item (workspace, feedback_id, item_key, created_at, negative, counted)
SELECT r.workspace, r.id, k.key, r.created_at, r.negative, r.counted
FROM r, unnest(r.item_keys) AS k (key)
""",
    "account": """
INSERT INTO account_fact (workspace, external_id, arr)
SELECT workspace, id, arr
FROM jsonb_to_recordset($1::jsonb) AS r (workspace text, id text, arr double precision)
ON CONFLICT (workspace, external_id) DO UPDATE SET arr = EXCLUDED.arr
""",
    "objective": """
INSERT INTO objective_fact (workspace, id, name, weight, active)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
    workspace text, id uuid, name text, weight double precision, active boolean
)
ON CONFLICT (workspace, id) DO UPDATE
SET name = EXCLUDED.name, weight = EXCLUDED.weight, active = EXCLUDED.active
""",
    "item": """
INSERT INTO item_fact (workspace, id, key, title, status, effort, area, objective_ids,
                       launch_key, shipped_at)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
    workspace text, id uuid, key text, title text, status text, effort double precision,
    area text, objective_ids uuid[], launch_key text, shipped_at timestamptz
)
ON CONFLICT (workspace, id) DO UPDATE
SET key = EXCLUDED.key, title = EXCLUDED.title, status = EXCLUDED.status,
    effort = EXCLUDED.effort, area = EXCLUDED.area, objective_ids = EXCLUDED.objective_ids,
    launch_key = EXCLUDED.launch_key, shipped_at = EXCLUDED.shipped_at
""",
    "launch": """
INSERT INTO launch_fact (workspace, id, key, name, status, target_date, item_keys, checklist)
SELECT * FROM jsonb_to_recordset($1::jsonb) AS r (
    workspace text, id uuid, key text, name text, status text, target_date date,
    item_keys text[], checklist jsonb
)
ON CONFLICT (workspace, id) DO UPDATE
SET key = EXCLUDED.key, name = EXCLUDED.name, status = EXCLUDED.status,
    target_date = EXCLUDED.target_date, item_keys = EXCLUDED.item_keys,
    checklist = EXCLUDED.checklist
""",
    "tracker_issue": """
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
""",
}

# The touches `touch.LookUps` names, read from the facts as written: the feedback groups of
# accounts ($1, $2) and of item keys ($3, $4), and the items of objectives ($5, $6).
LOOK_UP = """
SELECT 'group' AS kind, f.workspace, f.group_id AS id
FROM unnest($1::text[], $2::text[]) AS a (workspace, external_id)
JOIN feedback_fact AS f ON f.workspace = a.workspace AND f.account_external_id = a.external_id
UNION
SELECT 'group', f.workspace, f.group_id
FROM unnest($3::text[], $4::text[]) AS k (workspace, key)
JOIN feedback_item AS fi ON fi.workspace = k.workspace AND fi.item_key = k.key
JOIN feedback_fact AS f ON f.workspace = fi.workspace AND f.id = fi.feedback_id
UNION
SELECT 'item', i.workspace, i.id
FROM unnest($5::text[], $6::uuid[]) AS o (workspace, id)
JOIN item_fact AS i ON i.workspace = o.workspace AND i.objective_ids @> ARRAY[o.id]
"""
