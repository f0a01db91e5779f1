"""SQL that reads the facts whole: the summary of what is held, and a workspace's every row."""

from __future__ import annotations

SUMMARY = """
SELECT aggregate, count(*) AS live FROM projection
WHERE NOT deleted GROUP BY aggregate
"""

ALL_GROUPS = "SELECT DISTINCT group_id FROM feedback_fact WHERE workspace = $1"
ALL_ITEMS = "SELECT id FROM item_fact WHERE workspace = $1"
ITEM_IDS_OF_KEYS = "SELECT id FROM item_fact WHERE workspace = $1 AND key = ANY($2::text[])"
