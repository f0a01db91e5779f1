"""Set-based SQL that writes N events' worth of insights history for one workspace.

The facts, contributions, totals, expiries, version gates and inbox claims are what the engine
would hold after applying N events (ids `md5('<ws>:<kind>:<n>')`, see `bench.synthetic`): per
launch 10 items and ~200 issues, per item ~78 feedback, whatever N is, so a larger N means a
broader workspace, not deeper launches. Values are plausible, not what the engine would compute:
the cost of an event depends on the rows it reads and writes, not on their values.
Parameters are named `@name` and bound as `$n` by `bind`.
"""

from __future__ import annotations

import re
from typing import Any

_PARAMETER = re.compile(r"@([a-z_]+)")


def bind(sql: str, values: dict[str, Any]) -> tuple[str, list[Any]]:
    """The statement with `@name` as `$1…$n` in order of first use, and the values to pass."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAMETER.sub(number, sql), [values[name] for name in names]


FACTS = [
    """
INSERT INTO objective_fact (workspace, id, name, weight, active)
SELECT @ws, md5(@ws || ':o:' || g)::uuid, 'Objective ' || g, g, true FROM generate_series(0, 4) g
""",
    """
INSERT INTO launch_fact (workspace, id, key, name, status, target_date, item_keys, checklist)
SELECT @ws, md5(@ws || ':l:' || g)::uuid, 'HL-' || g, 'Launch ' || g, 'in_progress',
       current_date + 30, '{}', '[]'::jsonb
FROM generate_series(0, @launches - 1) g
""",
    """
INSERT INTO item_fact (workspace, id, key, title, status, effort, area, objective_ids,
                       launch_key, shipped_at)
SELECT @ws, md5(@ws || ':i:' || g)::uuid, 'H-' || g, 'Item ' || g,
       (ARRAY['idea', 'planned', 'in_progress', 'shipped'])[1 + g % 4], 1 + g % 5,
       'area-' || (g % 10), ARRAY[md5(@ws || ':o:' || (g % 5))::uuid], 'HL-' || (g % @launches),
       CASE WHEN g % 4 = 3 THEN now() - interval '10 days' END
FROM generate_series(0, @items - 1) g
""",
    """
INSERT INTO account_fact (workspace, external_id, arr)
SELECT @ws, 'acct-' || g, 10000 * (g % 50) FROM generate_series(0, @accounts - 1) g
""",
    """
INSERT INTO issue_fact (workspace, id, key, state, kind, priority, labels, item_keys,
                        launch_keys, closed_at)
SELECT @ws, md5(@ws || ':t:' || g)::uuid, 'hist/repo#' || g,
       CASE WHEN g % 3 = 0 THEN 'open' ELSE 'closed' END,
       (ARRAY['bug', 'feature', 'task'])[1 + g % 3], 'low', '{}',
       ARRAY['H-' || (g % @items)], ARRAY['HL-' || (g % @items % @launches)],
       CASE WHEN g % 3 <> 0 THEN now() - (g % 30) * interval '1 day' END
FROM generate_series(0, @issues - 1) g
""",
    """
INSERT INTO feedback_fact (workspace, id, group_id, account_key, account_external_id, priority,
                           sentiment, status, created_at, item_keys, tags)
SELECT @ws, id, id, 'account:acct-' || (g % @accounts), 'acct-' || (g % @accounts), 'normal',
       NULL, 'open',
       now() - (g % 170) * interval '1 day', ARRAY['H-' || (g % @items)], ARRAY['tag-' || (g % 50)]
FROM (SELECT g, md5(@ws || ':f:' || g)::uuid AS id FROM generate_series(0, @feedback - 1) g) AS s
""",
    """
INSERT INTO feedback_item (workspace, feedback_id, item_key, created_at, negative, counted)
SELECT workspace, id, item_keys[1], created_at, false, true FROM feedback_fact WHERE workspace = @ws
""",
]

DERIVED = [
    """
INSERT INTO contribution (workspace, contributor, metric, target, sub, value)
SELECT f.workspace, 'g:' || f.id, m.metric, m.target, '', 1.0
FROM feedback_fact AS f
JOIN item_fact AS i ON i.workspace = f.workspace AND i.key = f.item_keys[1]
CROSS JOIN LATERAL (VALUES ('demand', ''), ('demand', i.area), ('item_demand', i.key),
                           ('tag_demand', f.tags[1]), ('covered', ''), ('covered', i.area),
                           ('tag_unaddressed', f.tags[1])) AS m (metric, target)
WHERE f.workspace = @ws
  AND (m.metric NOT IN ('covered', 'tag_unaddressed')
       OR (m.metric = 'covered') = (i.status IN ('planned', 'in_progress', 'shipped')))
""",
    """
INSERT INTO contribution (workspace, contributor, metric, target, sub, value)
SELECT i.workspace, 'i:' || i.id, m.metric, m.target, m.sub, m.value
FROM item_fact AS i
CROSS JOIN LATERAL (VALUES
    ('links', '', i.objective_ids[1]::text, 1.0), ('links', i.area, i.objective_ids[1]::text, 1.0),
    ('committed', '', '', i.effort), ('committed', i.area, '', i.effort),
    ('aligned', '', '', i.effort), ('aligned', i.area, '', i.effort),
    ('objective', '', i.objective_ids[1]::text, i.effort),
    ('objective', i.area, i.objective_ids[1]::text, i.effort),
    ('evidence', '', '', i.effort), ('evidence', i.area, '', i.effort)
) AS m (metric, target, sub, value)
WHERE i.workspace = @ws AND (m.metric = 'links' OR i.status IN ('planned', 'in_progress'))
""",
    """
INSERT INTO total (workspace, metric, target, sub, value, contributors)
SELECT workspace, metric, target, sub, sum(value), count(*) FROM contribution
WHERE workspace = @ws GROUP BY workspace, metric, target, sub
""",
    """
INSERT INTO contributor_expiry (workspace, contributor, expires_at)
SELECT workspace, 'g:' || id, created_at + interval '180 days' FROM feedback_fact
WHERE workspace = @ws
""",
    """
INSERT INTO projection (workspace, aggregate, id, version, deleted, state, event_id)
SELECT @ws, aggregate, id, 1, false, jsonb_build_object('id', id, 'bench', 'history'),
       gen_random_uuid()
FROM (SELECT 'feedback' AS aggregate, id::text AS id FROM feedback_fact WHERE workspace = @ws
      UNION ALL SELECT 'tracker_issue', id::text FROM issue_fact WHERE workspace = @ws
      UNION ALL SELECT 'item', id::text FROM item_fact WHERE workspace = @ws
      UNION ALL SELECT 'launch', id::text FROM launch_fact WHERE workspace = @ws
      UNION ALL SELECT 'objective', id::text FROM objective_fact WHERE workspace = @ws
      UNION ALL SELECT 'account', external_id FROM account_fact WHERE workspace = @ws) AS facts
""",
    """
INSERT INTO inbox (consumer, event_id, workspace, type)
SELECT 'insights-projections', gen_random_uuid(), @ws, 'prodops.feedback.received.v1'
FROM generate_series(1, @events)
""",
]


def shape(events: int) -> tuple[int, int, int, int, int]:
    """Launches, items, accounts, issues and feedback that make up `events` events."""
    launches, items, accounts = max(1, events // 1000), max(1, events // 100), max(1, events // 100)
    issues = events // 5
    return (
        launches,
        items,
        accounts,
        issues,
        max(0, events - launches - items - accounts - issues - 5),
    )
