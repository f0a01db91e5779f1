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

# The launches ($2) that exist: each with the keys of the items that name it, and the signal
# held for it (NULL columns when none yet), in one round trip.
LAUNCHES = """
SELECT f.key, f.name, f.status, f.target_date, f.item_keys, f.checklist,
       ARRAY(SELECT i.key FROM item_fact AS i
             WHERE i.workspace = $1 AND i.launch_key = f.key) AS items_naming_it,
       s.status AS held_status, s.score AS held_score, s.components AS held_components,
       s.details AS held_details
FROM launch_fact AS f
LEFT JOIN launch_signal AS s ON s.workspace = f.workspace AND s.launch_key = f.key
WHERE f.workspace = $1 AND f.key = ANY($2::text[])
ORDER BY f.key
"""
# Each launch's ($2) linked issues, from launch_issue (migration 0007) and its tallies: so that a
# launch's cost does not grow with its issues, only the counts and the issues readiness may name
# are read, never every issue. Per launch: its tallies by state, kind and severity (as JSON
# arrays), its issues closed since $3, and the ids of its $4 most severe open ones (severity,
# then id). Each is its own index range per launch (a correlated subquery cannot be turned into
# a scan of every issue, as a plan made while the tables were young could otherwise be).
LAUNCH_ISSUES_RANKED = """
SELECT l.launch,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(t.state, t.kind, t.severity, t.issues)), '[]')
        FROM launch_issue_tally AS t
        WHERE t.workspace = $1 AND t.launch = l.launch AND t.issues > 0) AS tallies,
       (SELECT count(*) FROM launch_issue AS o
        WHERE o.workspace = $1 AND o.launch = l.launch AND o.state = 'closed'
          AND o.closed_at >= $3) AS closed_recently,
       ARRAY(SELECT o.issue_id::text FROM launch_issue AS o
             WHERE o.workspace = $1 AND o.launch = l.launch AND o.state = 'open'
             ORDER BY o.severity, o.issue_id LIMIT $4) AS most_severe
FROM unnest($2::text[]) AS l (launch)
"""
# The open issues that may block a launch or be its serious bugs, for Python to decide
# (`readiness.summarize` is the reference): those of the severities $3 (the blocker and
# serious-bug priorities), and those with a label $4 (the policy's blocker labels as
# `launch_issue_label` folds them, and its '' for labels Python folds). OFFSET 0 keeps each
# lookup an index range per launch, as above.
LAUNCH_ISSUE_CANDIDATES = """
WITH named AS (
    SELECT l.launch, n.issue_id
    FROM unnest($2::text[]) AS l (launch), unnest($3::smallint[]) AS s (severity)
    CROSS JOIN LATERAL (
        SELECT o.issue_id FROM launch_issue AS o
        WHERE o.workspace = $1 AND o.launch = l.launch AND o.state = 'open'
          AND o.severity = s.severity
        OFFSET 0
    ) AS n
    UNION
    SELECT l.launch, n.issue_id
    FROM unnest($2::text[]) AS l (launch), unnest($4::text[]) AS t (label)
    CROSS JOIN LATERAL (
        SELECT b.issue_id FROM launch_issue_label AS b
        WHERE b.workspace = $1 AND b.launch = l.launch AND b.label = t.label
        OFFSET 0
    ) AS n
)
SELECT n.launch, c.id, c.key, c.state, c.kind, c.priority, c.labels, c.closed_at
FROM named AS n
CROSS JOIN LATERAL (
    SELECT * FROM issue_fact AS i WHERE i.workspace = $1 AND i.id = n.issue_id OFFSET 0
) AS c
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
