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

LAUNCHES = """
SELECT key, name, status, target_date, item_keys, checklist FROM launch_fact
WHERE workspace = $1 AND key = ANY($2::text[])
ORDER BY key
"""
LAUNCHES_ITEMS = """
SELECT launch_key, key FROM item_fact WHERE workspace = $1 AND launch_key = ANY($2::text[])
"""
# Issues linked to any of the launches ($2) or to any of their items ($3): a BitmapOr of the two
# array indexes where few match, one scan where most do (a UNION would also hash every row to
# drop the duplicates, and ordering by key would sort on text).
LAUNCHES_ISSUES = """
SELECT id, key, state, kind, priority, labels, closed_at, item_keys, launch_keys FROM issue_fact
WHERE workspace = $1 AND (launch_keys && $2::text[] OR item_keys && $3::text[])
ORDER BY id
"""
# Per launch ($2, paired with each of its item keys $3): distinct feedback in the recent window
# (from $4) and the baseline window before it (from $5), up to now ($6).
LAUNCHES_SUPPORT = """
SELECT
    p.launch,
    count(DISTINCT f.feedback_id) FILTER (WHERE f.created_at >= $4) AS recent,
    count(DISTINCT f.feedback_id) FILTER (WHERE f.created_at >= $4 AND f.negative)
        AS recent_negative,
    count(DISTINCT f.feedback_id) FILTER (WHERE f.created_at < $4) AS baseline,
    count(DISTINCT f.feedback_id) FILTER (WHERE f.created_at < $4 AND f.negative)
        AS baseline_negative,
    (array_agg(DISTINCT f.feedback_id::text) FILTER (WHERE f.created_at >= $4))[1:50]
        AS recent_ids
FROM unnest($2::text[], $3::text[]) AS p (launch, item_key)
JOIN feedback_item AS f ON f.workspace = $1 AND f.item_key = p.item_key
WHERE f.counted AND f.created_at >= $5 AND f.created_at <= $6
GROUP BY p.launch
"""
LAUNCHES_OF_ITEMS = """
SELECT key FROM launch_fact WHERE workspace = $1 AND item_keys && $2::text[]
UNION SELECT launch_key FROM item_fact
WHERE workspace = $1 AND key = ANY($2::text[]) AND launch_key IS NOT NULL
"""
ALL_LAUNCHES = "SELECT key FROM launch_fact WHERE workspace = $1"

LAUNCH_SIGNALS = """
SELECT * FROM launch_signal WHERE workspace = $1 AND launch_key = ANY($2::text[])
"""
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
DROP_LAUNCH_SIGNALS = """
DELETE FROM launch_signal WHERE workspace = $1 AND launch_key = ANY($2::text[])
"""

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
