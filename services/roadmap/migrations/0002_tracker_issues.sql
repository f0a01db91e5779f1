-- Tracker issues (and pull/merge requests) as the trackers' webhooks describe them, and their
-- links to roadmap items and launches. Keys are stored as given: item keys upper-case, launch keys
-- as the tracker names them. A link `by` convention is recomputed from every delivery; `by` api
-- links are made over the API and only the API removes them.
CREATE TABLE tracker_issue (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    provider text NOT NULL CHECK (provider IN ('github', 'gitlab', 'jira', 'linear')),
    external_id text NOT NULL,
    key text NOT NULL,
    url text,
    title text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    state_reason text,
    kind text NOT NULL DEFAULT 'task' CHECK (kind IN ('bug', 'feature', 'task')),
    priority text NOT NULL DEFAULT 'none'
        CHECK (priority IN ('urgent', 'high', 'medium', 'low', 'none')),
    blocker boolean NOT NULL DEFAULT false,
    labels text[] NOT NULL DEFAULT '{}',
    estimate double precision,
    assignees text[] NOT NULL DEFAULT '{}',
    milestone text,
    fix_versions text[] NOT NULL DEFAULT '{}',
    project text,
    parent_key text,
    is_pull_request boolean NOT NULL DEFAULT false,
    merged boolean,
    created_at timestamptz NOT NULL,
    closed_at timestamptz,
    deleted boolean NOT NULL DEFAULT false,
    version integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace, provider, external_id)
);
CREATE INDEX tracker_issue_listing ON tracker_issue (workspace, updated_at DESC, id DESC);
CREATE INDEX tracker_issue_url ON tracker_issue (workspace, url);
SELECT prodops_enable_rls('tracker_issue');

CREATE TABLE tracker_link (
    workspace text NOT NULL,
    tracker_issue_id uuid NOT NULL REFERENCES tracker_issue (id) ON DELETE CASCADE,
    target text NOT NULL CHECK (target IN ('item', 'launch')),
    target_key text NOT NULL,
    by text NOT NULL CHECK (by IN ('convention', 'api')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tracker_issue_id, target, target_key)
);
CREATE INDEX tracker_link_target ON tracker_link (workspace, target, target_key);
SELECT prodops_enable_rls('tracker_link');
