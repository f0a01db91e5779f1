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
# The issues linked to each launch ($2), directly or through one of its items ($3; $4 maps each
# item key to its launches), summarised as readiness reads them (`readiness.summarize` is the
# reference), so that only what readiness names is sent, not every issue. One row per issue
# readiness names: the most severe open ones (by severity, then id; the first $11), the open
# blockers by priority ($6) or by a label that folds to one of $7 (a label that is not plain
# printable ASCII is sent too, for Python to fold), the open bugs of a serious priority ($8); the
# launch's first row when none is. Every row carries the launch's counts and its open bug load
# (the loads of the priorities $9 are $10); `closed_recently` counts closings from $5.
# The table is read once (through its array indexes, or in one scan), and nothing is joined to it:
# a plan made while the table was young cannot turn into a scan per launch.
LAUNCHES_ISSUE_SUMMARY = """
WITH linked AS (
    -- Each (launch, issue) once, with no aggregation per row: a launch the issue names, at its
    -- first place there; then a launch one of its items is in, unless it names the launch
    -- itself or an earlier item of it is in that launch too.
    SELECT m.launch, c.id, c.key, c.state, c.kind, c.priority, c.labels, c.closed_at
    FROM issue_fact AS c
    CROSS JOIN LATERAL (
        SELECT k.launch FROM unnest(c.launch_keys) WITH ORDINALITY AS k (launch, n)
        WHERE k.launch = ANY($2::text[]) AND array_position(c.launch_keys, k.launch) = k.n
        UNION ALL
        SELECT l.launch FROM unnest(c.item_keys) WITH ORDINALITY AS i (item_key, n),
                             jsonb_array_elements_text($4::jsonb -> i.item_key) AS l (launch)
        WHERE NOT l.launch = ANY(c.launch_keys)
          AND NOT EXISTS (
              SELECT FROM unnest(c.item_keys[:i.n - 1]) AS e (item_key)
              WHERE $4::jsonb -> e.item_key ? l.launch
          )
    ) AS m
    WHERE c.workspace = $1 AND (c.launch_keys && $2::text[] OR c.item_keys && $3::text[])
), ranked AS (
    SELECT l.*,
           l.state = 'open' AS open,
           count(*) OVER w AS total,
           count(*) FILTER (WHERE l.state = 'open') OVER w AS open_count,
           count(*) FILTER (WHERE l.state = 'closed' AND l.closed_at >= $5) OVER w
               AS closed_recently,
           coalesce(sum(($10::float8[])[array_position($9::text[], l.priority)])
                        FILTER (WHERE l.state = 'open' AND l.kind = 'bug') OVER w, 0)
               AS open_bug_load,
           row_number() OVER w AS rank
    FROM linked AS l
    -- One sort serves both: the ranking, and (whole-partition frame) the launch's sums.
    WINDOW w AS (
        PARTITION BY l.launch
        ORDER BY l.state <> 'open', array_position($9::text[], l.priority), l.id
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    )
), named AS (
    SELECT r.*,
           r.open AND r.rank <= $11 AS most_severe,
           r.open AND (r.priority = ANY($6::text[]) OR EXISTS (
               SELECT FROM unnest(r.labels) AS t (label)
               WHERE label !~ '^[ -~]*$' OR lower(btrim(label) COLLATE "C") = ANY($7::text[])
           )) AS blocker_candidate,
           r.open AND r.kind = 'bug' AND r.priority = ANY($8::text[]) AS serious
    FROM ranked AS r
)
SELECT launch, id, key, state, kind, priority, labels, closed_at, total, open_count,
       closed_recently, open_bug_load, most_severe, blocker_candidate, serious
FROM named
WHERE rank = 1 OR most_severe OR blocker_candidate OR serious
ORDER BY launch, rank
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
