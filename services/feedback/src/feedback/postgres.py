"""Every SQL statement of the feedback service."""

from __future__ import annotations

# --- feedback items ---------------------------------------------------------------------------

INSERT_FEEDBACK = """
INSERT INTO feedback_item (
    id, workspace, source_key, provider, source_id, external_id, url, title, body, customer,
    account_external_id, tags, priority, sentiment, status, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, now())
ON CONFLICT (workspace, source_key, external_id) DO NOTHING
RETURNING *
"""

SELECT_BY_EXTERNAL_ID = """
SELECT f.*, merged_duplicates(f.id) AS merged FROM feedback_item f
WHERE f.source_key = $1 AND f.external_id = $2
"""

# The row a later event of the same ticket changes: locked, so versions never collide.
LOCK_BY_EXTERNAL_ID = """
SELECT * FROM feedback_item
WHERE workspace = $1 AND source_key = $2 AND external_id = $3
FOR UPDATE
"""

SELECT_FEEDBACK = """
SELECT f.*, merged_duplicates(f.id) AS merged FROM feedback_item f WHERE f.id = $1
"""

LOCK_FEEDBACK = "SELECT * FROM feedback_item WHERE id = $1 FOR UPDATE"

# Several items are always locked in id order, so two merges cannot deadlock.
LOCK_FEEDBACKS = """
SELECT * FROM feedback_item WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""

HAS_DUPLICATES = "SELECT EXISTS (SELECT 1 FROM feedback_item WHERE merged_into = $1)"

UPDATE_FEEDBACK = """
UPDATE feedback_item AS f
SET url = $2, title = $3, body = $4, customer = $5, account_external_id = $6, tags = $7,
    priority = $8, sentiment = $9, status = $10,
    item_keys = ARRAY(
        SELECT l.item_key FROM feedback_link l
        WHERE l.feedback_id = f.id AND l.status = 'linked' ORDER BY l.item_key
    ),
    version = f.version + 1, updated_at = now()
WHERE f.id = $1
RETURNING f.*, merged_duplicates(f.id) AS merged
"""

# A new item's links, without a new version: they are part of what it was received with.
REFRESH_ITEM_KEYS = """
UPDATE feedback_item AS f
SET item_keys = ARRAY(
    SELECT l.item_key FROM feedback_link l
    WHERE l.feedback_id = f.id AND l.status = 'linked' ORDER BY l.item_key
)
WHERE f.id = $1
RETURNING f.*, merged_duplicates(f.id) AS merged
"""

# A new version of items whose links or merged duplicates changed.
BUMP_FEEDBACK = """
UPDATE feedback_item AS f
SET item_keys = ARRAY(
        SELECT l.item_key FROM feedback_link l
        WHERE l.feedback_id = f.id AND l.status = 'linked' ORDER BY l.item_key
    ),
    version = f.version + 1, updated_at = now()
WHERE f.id = ANY($1::uuid[])
RETURNING f.*, merged_duplicates(f.id) AS merged
"""

SET_MERGED_INTO = """
UPDATE feedback_item AS f
SET merged_into = $2, version = f.version + 1, updated_at = now()
WHERE f.id = $1
RETURNING f.*, merged_duplicates(f.id) AS merged
"""

# Deleting a survivor gives its duplicates back their own life first.
UNMERGE_DUPLICATES_OF = """
UPDATE feedback_item
SET merged_into = NULL, version = version + 1, updated_at = now()
WHERE merged_into = $1
RETURNING *
"""

DELETE_FEEDBACK = "DELETE FROM feedback_item WHERE id = $1"

LIST_FEEDBACK = """
SELECT f.*, merged_duplicates(f.id) AS merged FROM feedback_item f
WHERE ($1::text IS NULL OR f.status = $1)
    AND ($2::text IS NULL OR f.tags @> ARRAY[$2::text])
    AND ($3::text IS NULL OR f.account_external_id = $3)
    AND ($4::text IS NULL OR EXISTS (
        SELECT 1 FROM feedback_link l
        WHERE l.feedback_id = f.id AND l.status = 'linked' AND upper(l.item_key) = upper($4)
    ))
    AND ($5::text IS NULL OR f.source_key = $5)
    AND ($6::timestamptz IS NULL OR f.created_at >= $6)
    AND ($7::timestamptz IS NULL OR f.created_at < $7)
    AND ($8::boolean OR f.merged_into IS NULL)
    AND ($9::timestamptz IS NULL OR (f.created_at, f.id) < ($9, $10::uuid))
ORDER BY f.created_at DESC, f.id DESC
LIMIT $11
"""

# --- links to roadmap items -------------------------------------------------------------------

# Serialises linking a key by tag with the arrival of that key's item, so a tag can never stay
# pending because its item committed between the lookup and the pending insert.
LOCK_ITEM_KEYS = """
SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || k.key, 0))
FROM (SELECT key FROM unnest($2::text[]) AS u(key) ORDER BY key) AS k
"""

# Linked when the projection knows the key (and then in its canonical form), else pending.
INSERT_TAG_LINKS = """
INSERT INTO feedback_link (workspace, feedback_id, item_key, linked_by, status)
SELECT $1, $2, coalesce(known.key, wanted.key), 'tag',
    CASE WHEN known.key IS NULL THEN 'pending' ELSE 'linked' END
FROM unnest($3::text[]) AS wanted(key)
LEFT JOIN LATERAL (
    SELECT i.key FROM item_key i
    WHERE i.workspace = $1 AND upper(i.key) = wanted.key AND NOT i.deleted
    ORDER BY i.version DESC LIMIT 1
) AS known ON true
ON CONFLICT (feedback_id, item_key) DO NOTHING
RETURNING item_key, status
"""

# Tags only take back what tags made: an explicit API link stays.
DELETE_TAG_LINKS = """
DELETE FROM feedback_link
WHERE feedback_id = $1 AND linked_by = 'tag' AND upper(item_key) = ANY($2::text[])
RETURNING item_key, status
"""

SELECT_LINK = """
SELECT item_key, linked_by, status FROM feedback_link
WHERE feedback_id = $1 AND upper(item_key) = upper($2)
"""

INSERT_API_LINK = """
INSERT INTO feedback_link (workspace, feedback_id, item_key, linked_by, status)
VALUES ($1, $2, coalesce((
    SELECT i.key FROM item_key i
    WHERE i.workspace = $1 AND upper(i.key) = upper($3) AND NOT i.deleted
    ORDER BY i.version DESC LIMIT 1
), upper($3)), 'api', 'linked')
RETURNING item_key
"""

PROMOTE_LINK = """
UPDATE feedback_link SET linked_by = 'api', status = 'linked'
WHERE feedback_id = $1 AND item_key = $2
"""

DELETE_LINK = "DELETE FROM feedback_link WHERE feedback_id = $1 AND item_key = $2"

# --- the projection of roadmap items ------------------------------------------------------------

UPSERT_ITEM_KEY = """
INSERT INTO item_key AS i (workspace, item_id, key, version, deleted)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (workspace, item_id) DO UPDATE
SET key = EXCLUDED.key, version = EXCLUDED.version, deleted = EXCLUDED.deleted
WHERE i.version < EXCLUDED.version
RETURNING key
"""

# Consumers run as the schema owner, so these name the workspace themselves.
LOCK_PENDING_FOR_KEY = """
SELECT f.id FROM feedback_item f
WHERE f.workspace = $1 AND f.id IN (
    SELECT l.feedback_id FROM feedback_link l
    WHERE l.workspace = $1 AND upper(l.item_key) = upper($2) AND l.status = 'pending'
)
ORDER BY f.id
FOR UPDATE
"""

RESOLVE_PENDING = """
UPDATE feedback_link SET status = 'linked', item_key = $2
WHERE workspace = $1 AND feedback_id = ANY($3::uuid[]) AND status = 'pending'
    AND upper(item_key) = upper($2)
"""


# --- accounts and imports ---

# An account changes (version + 1) only when a field differs; an unchanged one returns no row.
UPSERT_ACCOUNTS = """
INSERT INTO account AS a (workspace, external_id, name, arr, segment, plan)
SELECT $1, u.external_id, u.name, u.arr, u.segment, u.plan
FROM unnest($2::text[], $3::text[], $4::numeric[], $5::text[], $6::text[])
    AS u(external_id, name, arr, segment, plan)
ON CONFLICT (workspace, external_id) DO UPDATE
SET name = excluded.name,
    arr = excluded.arr,
    segment = excluded.segment,
    plan = excluded.plan,
    version = a.version + 1,
    updated_at = now()
WHERE (a.name, a.arr, a.segment, a.plan)
    IS DISTINCT FROM (excluded.name, excluded.arr, excluded.segment, excluded.plan)
RETURNING *
"""

SELECT_ACCOUNTS = "SELECT * FROM account WHERE external_id = ANY($1::text[])"

LIST_ACCOUNTS = """
SELECT * FROM account
WHERE ($1::text IS NULL OR external_id > $1)
    AND ($2::text IS NULL OR segment = $2)
    AND ($3::text IS NULL OR plan = $3)
ORDER BY external_id
LIMIT $4
"""

# Imported items are keyed ('import', external id): a line imported before is left as it is.
# Tags and customers travel as JSON text, since asyncpg cannot send ragged nested arrays.
IMPORT_FEEDBACK = """
INSERT INTO feedback_item (
    id, workspace, source_key, provider, external_id, url, title, body, customer,
    account_external_id, tags, priority, created_at, updated_at
)
SELECT u.id, $1, 'import', 'import', u.external_id, u.url, u.title, u.body, u.customer::jsonb,
    u.account_external_id, ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)), u.priority,
    coalesce(u.created_at, now()), now()
FROM unnest(
    $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::timestamptz[]
) AS u(id, external_id, url, title, body, customer, account_external_id, tags, priority,
    created_at)
ON CONFLICT (workspace, source_key, external_id) DO NOTHING
RETURNING *
"""
