"""SQL of the insights read API (row-level security confines each query to the workspace)."""

from __future__ import annotations

ALIGNMENT = "SELECT * FROM alignment_signal WHERE scope = $1"
AREAS = """
SELECT * FROM alignment_signal WHERE scope <> '' AND scope > $1 ORDER BY scope LIMIT $2
"""
LAUNCHES = """
SELECT * FROM launch_signal
WHERE launch_key > $1 AND ($2::text IS NULL OR status = $2)
ORDER BY launch_key LIMIT $3
"""
# The workspace, the application role, the key (migration 0005).
LAUNCH_OF = "SELECT * FROM launch_signal_of($1, $2, $3)"
HISTORY = """
SELECT at, id, value FROM signal_history
WHERE kind = $1 AND subject = $2
  AND ($3::timestamptz IS NULL OR (at, id) < ($3, $4::uuid))
ORDER BY at DESC, id DESC LIMIT $5
"""
ITEM_DEMAND = """
SELECT i.key, i.title, i.status, i.status IN ('planned', 'in_progress') AS committed,
       t.value, t.contributors
FROM total AS t JOIN item_fact AS i ON i.workspace = t.workspace AND i.key = t.target
WHERE t.metric = 'item_demand' AND t.sub = '' AND t.contributors > 0
ORDER BY i.status IN ('planned', 'in_progress', 'shipped'), t.value DESC, i.key
LIMIT $1
"""
TAG_DEMAND = """
SELECT t.target, t.value, t.contributors, coalesce(u.value, 0) AS unaddressed
FROM total AS t
LEFT JOIN total AS u ON u.workspace = t.workspace AND u.metric = 'tag_unaddressed'
    AND u.target = t.target AND u.sub = '' AND u.contributors > 0
WHERE t.metric = 'tag_demand' AND t.sub = '' AND t.contributors > 0
ORDER BY coalesce(u.value, 0) DESC, t.value DESC, t.target
LIMIT $1
"""
