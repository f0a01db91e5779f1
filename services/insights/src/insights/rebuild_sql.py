"""SQL of the rebuild: shutting the live consumer out, and writing whole tables at once."""

from __future__ import annotations

# Tables the rebuild empties and fills again; signal history and subscriptions are kept.
DERIVED = (
    "projection",
    "feedback_fact",
    "feedback_item",
    "account_fact",
    "objective_fact",
    "item_fact",
    "launch_fact",
    "issue_fact",
    "launch_issue",
    "launch_issue_label",
    "launch_issue_tally",
    "contribution",
    "total",
    "contributor_expiry",
    "launch_signal",
    "alignment_signal",
)

# Taken first: the live consumer claims before it locks anything else, so its claims wait here
# for the rebuild's commit (and then find the rebuild's events claimed), never half-way through.
LOCK_INBOX = "LOCK TABLE inbox IN SHARE ROW EXCLUSIVE MODE"
# TRUNCATE waits for the live consumer's open batch, then shuts it out until commit.
TRUNCATE = f"TRUNCATE {', '.join(DERIVED)}"
FORGET_CLAIMS = "DELETE FROM inbox WHERE consumer = $1"

# COPY FROM is refused on a table under row-level security (FORCE applies it to the owner too,
# not to a superuser), so there rows go to a temporary twin first, then in with one statement.
UNDER_RLS = "SELECT row_security_active($1::text::regclass)"
STAGE = "CREATE TEMPORARY TABLE {stage} (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP"
FROM_STAGE = "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}"

# Statistics of the tables just filled, for the signals' plans: without them the planner scans a
# workspace's every issue for each launch instead of using the array indexes. ANALYZE samples
# the rows of its own transaction too.
ANALYZE = """
ANALYZE issue_fact, feedback_item, item_fact, launch_fact, total, launch_issue, launch_issue_label,
        launch_issue_tally
"""
# New entries of a GIN index wait in a pending list that every search reads through; the live
# engine's writes are few enough for autovacuum to keep it short, a rebuild's are not.
CLEAN_GIN = """
SELECT gin_clean_pending_list(name::regclass)
FROM unnest(ARRAY['issue_fact_items', 'issue_fact_launches', 'launch_fact_items',
                  'item_fact_objectives']) AS name
"""

# Every event the rebuild applied, written while the stream is read (replay.Applied): then its
# claims and the newest state of each aggregate (the last one staged) go in whole.
STAGE_APPLIED = """
CREATE TEMPORARY TABLE rebuild_applied (
    event_id uuid NOT NULL, workspace text NOT NULL, type text NOT NULL,
    aggregate text, id text, version integer, deleted boolean, state jsonb
) ON COMMIT DROP
"""
CLAIM_APPLIED = """
INSERT INTO inbox (consumer, event_id, workspace, type)
SELECT $1, event_id, workspace, type FROM rebuild_applied
"""
PROJECT_APPLIED = """
INSERT INTO projection (workspace, aggregate, id, version, deleted, state, event_id)
SELECT DISTINCT ON (workspace, aggregate, id) workspace, aggregate, id, version, deleted, state,
       event_id
FROM rebuild_applied WHERE aggregate IS NOT NULL
ORDER BY workspace, aggregate, id, version DESC
"""

COLUMNS: dict[str, tuple[str, ...]] = {
    "rebuild_applied": (
        "event_id",
        "workspace",
        "type",
        "aggregate",
        "id",
        "version",
        "deleted",
        "state",
    ),
    "inbox": ("consumer", "event_id", "workspace", "type"),
    "projection": ("workspace", "aggregate", "id", "version", "deleted", "state", "event_id"),
    "feedback_fact": (
        "workspace",
        "id",
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
    "feedback_item": ("workspace", "feedback_id", "item_key", "created_at", "negative", "counted"),
    "account_fact": ("workspace", "external_id", "arr"),
    "objective_fact": ("workspace", "id", "name", "weight", "active"),
    "item_fact": (
        "workspace",
        "id",
        "key",
        "title",
        "status",
        "effort",
        "area",
        "objective_ids",
        "launch_key",
        "shipped_at",
    ),
    "launch_fact": (
        "workspace",
        "id",
        "key",
        "name",
        "status",
        "target_date",
        "item_keys",
        "checklist",
    ),
    "issue_fact": (
        "workspace",
        "id",
        "key",
        "state",
        "kind",
        "priority",
        "labels",
        "item_keys",
        "launch_keys",
        "closed_at",
    ),
    "contribution": ("workspace", "contributor", "metric", "target", "sub", "value"),
    "total": ("workspace", "metric", "target", "sub", "value", "contributors"),
    "contributor_expiry": ("workspace", "contributor", "expires_at"),
}
