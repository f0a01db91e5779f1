-- The signal engine (design.md §5). Facts are the typed latest state of each aggregate (gated
-- by the `projection` table's versions); contributions and totals keep every sum a signal needs,
-- so one event changes only the rows of what it touches and no signal rescans history.

CREATE TABLE feedback_fact (
    workspace text NOT NULL,
    id uuid NOT NULL,
    group_id uuid NOT NULL,          -- the survivor it is merged into, else itself
    account_key text NOT NULL,       -- account, else customer, else the feedback itself
    account_external_id text,
    priority text NOT NULL,
    sentiment double precision,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    item_keys text[] NOT NULL,
    tags text[] NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX feedback_fact_group ON feedback_fact (workspace, group_id);
CREATE INDEX feedback_fact_account ON feedback_fact (workspace, account_external_id);

CREATE TABLE feedback_item (
    workspace text NOT NULL,
    feedback_id uuid NOT NULL,
    item_key text NOT NULL,
    created_at timestamptz NOT NULL,
    negative boolean NOT NULL,
    counted boolean NOT NULL,
    PRIMARY KEY (workspace, feedback_id, item_key)
);
CREATE INDEX feedback_item_by_item ON feedback_item (workspace, item_key, created_at);

CREATE TABLE account_fact (
    workspace text NOT NULL,
    external_id text NOT NULL,
    arr double precision NOT NULL,
    PRIMARY KEY (workspace, external_id)
);

CREATE TABLE objective_fact (
    workspace text NOT NULL,
    id uuid NOT NULL,
    name text NOT NULL,
    weight double precision NOT NULL,
    active boolean NOT NULL,
    PRIMARY KEY (workspace, id)
);

CREATE TABLE item_fact (
    workspace text NOT NULL,
    id uuid NOT NULL,
    key text NOT NULL,
    title text NOT NULL,
    status text NOT NULL,
    effort double precision NOT NULL,
    area text,
    objective_ids uuid[] NOT NULL,
    launch_key text,
    shipped_at timestamptz,
    PRIMARY KEY (workspace, id)
);
CREATE UNIQUE INDEX item_fact_key ON item_fact (workspace, key);
CREATE INDEX item_fact_launch ON item_fact (workspace, launch_key);
CREATE INDEX item_fact_objectives ON item_fact USING gin (objective_ids);

CREATE TABLE launch_fact (
    workspace text NOT NULL,
    id uuid NOT NULL,
    key text NOT NULL,
    name text NOT NULL,
    status text NOT NULL,
    target_date date,
    item_keys text[] NOT NULL,
    checklist jsonb NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE UNIQUE INDEX launch_fact_key ON launch_fact (workspace, key);
CREATE INDEX launch_fact_items ON launch_fact USING gin (item_keys);

CREATE TABLE issue_fact (
    workspace text NOT NULL,
    id uuid NOT NULL,
    key text NOT NULL,
    state text NOT NULL,
    kind text NOT NULL,
    priority text NOT NULL,
    labels text[] NOT NULL,
    item_keys text[] NOT NULL,
    launch_keys text[] NOT NULL,
    closed_at timestamptz,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX issue_fact_items ON issue_fact USING gin (item_keys);
CREATE INDEX issue_fact_launches ON issue_fact USING gin (launch_keys);

-- What one contributor (a feedback group `g:<id>` or an item `i:<id>`) adds to each total.
CREATE TABLE contribution (
    workspace text NOT NULL,
    contributor text NOT NULL,
    metric text NOT NULL,
    target text NOT NULL,
    sub text NOT NULL DEFAULT '',
    value double precision NOT NULL,
    PRIMARY KEY (workspace, contributor, metric, target, sub)
);

CREATE TABLE total (
    workspace text NOT NULL,
    metric text NOT NULL,
    target text NOT NULL,
    sub text NOT NULL DEFAULT '',
    value double precision NOT NULL,
    contributors integer NOT NULL,
    PRIMARY KEY (workspace, metric, target, sub)
);
CREATE INDEX total_ranking ON total (workspace, metric, value DESC);

-- When a contributor's contribution changes with time alone (its feedback leaves the window).
CREATE TABLE contributor_expiry (
    workspace text NOT NULL,
    contributor text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (workspace, contributor)
);
CREATE INDEX contributor_expiry_due ON contributor_expiry (expires_at);

CREATE TABLE policy (
    workspace text NOT NULL,
    kind text NOT NULL,
    version integer NOT NULL,
    body jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, kind)
);

CREATE TABLE policy_version (
    workspace text NOT NULL,
    kind text NOT NULL,
    version integer NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, kind, version)
);

CREATE TABLE launch_signal (
    workspace text NOT NULL,
    launch_key text NOT NULL,
    name text NOT NULL,
    status text NOT NULL,
    score double precision NOT NULL,
    components jsonb NOT NULL,
    reasons jsonb NOT NULL,
    details jsonb NOT NULL,
    computed_at timestamptz NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (workspace, launch_key)
);

CREATE TABLE alignment_signal (
    workspace text NOT NULL,
    scope text NOT NULL,             -- '' for the workspace, else a product area
    alignment double precision NOT NULL,
    strategic double precision NOT NULL,
    customer double precision NOT NULL,
    components jsonb NOT NULL,
    reasons jsonb NOT NULL,
    computed_at timestamptz NOT NULL,
    changed_at timestamptz NOT NULL,
    PRIMARY KEY (workspace, scope)
);

-- Every distinct value a signal took, for the time series.
CREATE TABLE signal_history (
    workspace text NOT NULL,
    kind text NOT NULL,              -- 'launch' or 'alignment'
    subject text NOT NULL,           -- launch key, or '' / area
    at timestamptz NOT NULL,
    id uuid NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (workspace, kind, subject, at, id)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['feedback_fact', 'feedback_item', 'account_fact', 'objective_fact',
        'item_fact', 'launch_fact', 'issue_fact', 'contribution', 'total', 'contributor_expiry',
        'policy', 'policy_version', 'launch_signal', 'alignment_signal', 'signal_history']
    LOOP
        PERFORM prodops_enable_rls(t::regclass);
    END LOOP;
END
$$;
