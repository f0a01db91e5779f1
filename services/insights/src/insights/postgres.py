"""Every SQL statement of the insights service."""

from __future__ import annotations

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
