"""SQL the signal computations read and write."""

from __future__ import annotations

SCOPE_TOTALS = """
SELECT metric, sub, value FROM total
WHERE workspace = $1 AND target = $2 AND metric = ANY($3::text[]) AND contributors > 0
"""
ALL_SCOPES = """
SELECT DISTINCT target FROM total
WHERE workspace = $1 AND metric IN ('committed', 'demand', 'links') AND contributors > 0
UNION SELECT scope FROM alignment_signal WHERE workspace = $1
"""
ACTIVE_OBJECTIVES = "SELECT id, weight FROM objective_fact WHERE workspace = $1 AND active"
RANKED_ITEMS = """
SELECT sub FROM total
WHERE workspace = $1 AND metric = $2 AND target = $3 AND contributors > 0
ORDER BY value DESC, sub LIMIT $4
"""
UNADDRESSED_TAGS = """
SELECT target FROM total
WHERE workspace = $1 AND metric = 'tag_unaddressed' AND sub = '' AND contributors > 0
ORDER BY value DESC, target LIMIT 5
"""

LAUNCH = """
SELECT key, name, status, target_date, item_keys, checklist FROM launch_fact
WHERE workspace = $1 AND key = $2
"""
LAUNCH_ITEMS = "SELECT key FROM item_fact WHERE workspace = $1 AND launch_key = $2"
# A UNION, not an OR: each half uses its own array index.
LAUNCH_ISSUES = """
SELECT id, key, state, kind, priority, labels, closed_at FROM issue_fact
WHERE workspace = $1 AND launch_keys @> ARRAY[$2::text]
UNION
SELECT id, key, state, kind, priority, labels, closed_at FROM issue_fact
WHERE workspace = $1 AND item_keys && $3::text[]
ORDER BY key, id
"""
LAUNCH_SUPPORT = """
SELECT
    count(DISTINCT feedback_id) FILTER (WHERE created_at >= $3) AS recent,
    count(DISTINCT feedback_id) FILTER (WHERE created_at >= $3 AND negative) AS recent_negative,
    count(DISTINCT feedback_id) FILTER (WHERE created_at < $3) AS baseline,
    count(DISTINCT feedback_id) FILTER (WHERE created_at < $3 AND negative) AS baseline_negative,
    (array_agg(DISTINCT feedback_id::text) FILTER (WHERE created_at >= $3))[1:50] AS recent_ids
FROM feedback_item
WHERE workspace = $1 AND item_key = ANY($2::text[]) AND counted
  AND created_at >= $4 AND created_at <= $5
"""
LAUNCHES_OF_ITEMS = """
SELECT key FROM launch_fact WHERE workspace = $1 AND item_keys && $2::text[]
UNION SELECT launch_key FROM item_fact
WHERE workspace = $1 AND key = ANY($2::text[]) AND launch_key IS NOT NULL
"""
ALL_LAUNCHES = "SELECT key FROM launch_fact WHERE workspace = $1"

LAUNCH_SIGNAL = "SELECT * FROM launch_signal WHERE workspace = $1 AND launch_key = $2"
PUT_LAUNCH_SIGNAL = """
INSERT INTO launch_signal (workspace, launch_key, name, status, score, components, reasons,
                           details, computed_at, changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
ON CONFLICT (workspace, launch_key) DO UPDATE
SET name = EXCLUDED.name, status = EXCLUDED.status, score = EXCLUDED.score,
    components = EXCLUDED.components, reasons = EXCLUDED.reasons, details = EXCLUDED.details,
    computed_at = EXCLUDED.computed_at,
    changed_at = CASE WHEN launch_signal.status = EXCLUDED.status
                       AND launch_signal.score = EXCLUDED.score
                      THEN launch_signal.changed_at ELSE EXCLUDED.computed_at END
"""
DROP_LAUNCH_SIGNAL = "DELETE FROM launch_signal WHERE workspace = $1 AND launch_key = $2"

ALIGNMENT_SIGNAL = "SELECT * FROM alignment_signal WHERE workspace = $1 AND scope = $2"
PUT_ALIGNMENT_SIGNAL = """
INSERT INTO alignment_signal (workspace, scope, alignment, strategic, customer, components,
                              reasons, computed_at, changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (workspace, scope) DO UPDATE
SET alignment = EXCLUDED.alignment, strategic = EXCLUDED.strategic,
    customer = EXCLUDED.customer, components = EXCLUDED.components, reasons = EXCLUDED.reasons,
    computed_at = EXCLUDED.computed_at,
    changed_at = CASE WHEN alignment_signal.components = EXCLUDED.components
                      THEN alignment_signal.changed_at ELSE EXCLUDED.computed_at END
"""
DROP_ALIGNMENT_SIGNAL = "DELETE FROM alignment_signal WHERE workspace = $1 AND scope = $2"

ADD_HISTORY = """
INSERT INTO signal_history (workspace, kind, subject, at, id, value)
VALUES ($1, $2, $3, $4, $5, $6)
"""
