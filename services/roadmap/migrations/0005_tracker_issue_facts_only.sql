-- Roadmap stores what a tracker says of an issue (labels, priority, kind), not whether it blocks
-- a launch: that verdict follows each workspace's readiness policy and is evaluated in insights
-- alone, so a second, hard-coded answer here could only disagree with it.
ALTER TABLE tracker_issue DROP COLUMN blocker;
