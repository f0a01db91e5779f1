-- The Linear cycle of a tracker issue, as `tracker_issue.upserted` carries it: {id, number, name}.
ALTER TABLE tracker_issue ADD COLUMN cycle jsonb;

-- GitLab hooks carry a milestone's id, never its title (gitlab-org/gitlab#218295): a GitLab
-- source may hold an API token to read titles with. The token is Fernet-sealed like webhook
-- secrets and never shown again; it goes with its source.
CREATE TABLE source_api_access (
    source_id uuid PRIMARY KEY REFERENCES webhook_source (id) ON DELETE CASCADE,
    workspace text NOT NULL,
    base_url text NOT NULL,
    token bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
SELECT prodops_enable_rls('source_api_access');

-- Milestone titles read from GitLab, per source (each source may reach another GitLab), trusted
-- for PRODOPS_GITLAB_MILESTONE_CACHE_SECONDS after `fetched_at`.
CREATE TABLE gitlab_milestone (
    source_id uuid NOT NULL REFERENCES webhook_source (id) ON DELETE CASCADE,
    milestone_id bigint NOT NULL,
    workspace text NOT NULL,
    title text NOT NULL,
    fetched_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, milestone_id)
);
SELECT prodops_enable_rls('gitlab_milestone');
