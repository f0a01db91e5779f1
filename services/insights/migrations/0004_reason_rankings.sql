-- Reasons rank the contributors of one metric in one scope (committed items without an
-- objective, without evidence, uncommitted items with demand): read in order, never scanned.
CREATE INDEX total_by_target ON total (workspace, metric, target, value DESC);
