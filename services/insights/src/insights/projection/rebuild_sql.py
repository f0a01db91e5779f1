"""SQL of the rebuild: shutting the live consumer out, emptying what it derives, and planning."""

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
