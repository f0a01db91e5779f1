"""Every SQL statement of the feedback service."""

from __future__ import annotations

INSERT_FEEDBACK = """
INSERT INTO feedback_item (
    id, workspace, source_key, provider, source_id, external_id, url, title, body, customer,
    account_external_id, tags, priority, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
ON CONFLICT (workspace, source_key, external_id) DO NOTHING
RETURNING *
"""

SELECT_BY_EXTERNAL_ID = """
SELECT * FROM feedback_item WHERE source_key = $1 AND external_id = $2
"""

SELECT_FEEDBACK = "SELECT * FROM feedback_item WHERE id = $1"

LIST_FEEDBACK = """
SELECT * FROM feedback_item
WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $3
"""
