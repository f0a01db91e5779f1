-- A GIN index first appends new entries to a pending list, which every search reads whole until
-- the list is merged (by vacuum, or when it outgrows its limit). At the default 4 MB, a search of
-- issue_fact_launches for one launch among 60 000 freshly written issues took 6.8 ms, against
-- 0.7 ms once merged; at the minimum limit, 64 kB, 1.3 ms. Writes are still merged in bulk:
-- a COPY of those 60 000 issue facts, as a rebuild loads them, took no longer at 64 kB, where
-- turning fastupdate off made it take twice as long.
ALTER INDEX issue_fact_items SET (gin_pending_list_limit = 64);
ALTER INDEX issue_fact_launches SET (gin_pending_list_limit = 64);
ALTER INDEX launch_fact_items SET (gin_pending_list_limit = 64);
ALTER INDEX item_fact_objectives SET (gin_pending_list_limit = 64);
SELECT gin_clean_pending_list(name)
FROM unnest(ARRAY['issue_fact_items', 'issue_fact_launches', 'launch_fact_items',
                  'item_fact_objectives']::regclass[]) AS i (name);
