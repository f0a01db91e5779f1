-- Feedback items: one per (source, external id); versioned, since every change is emitted.
CREATE TABLE feedback_item (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    source_key text NOT NULL,            -- 'api', 'import', or the id of a registered source
    provider text NOT NULL,
    source_id uuid,
    external_id text,
    url text,
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    customer jsonb,
    account_external_id text,
    tags text[] NOT NULL DEFAULT '{}',
    priority text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    sentiment double precision CHECK (sentiment BETWEEN -1 AND 1),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'archived')),
    item_keys text[] NOT NULL DEFAULT '{}',
    merged_into uuid REFERENCES feedback_item (id),
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (workspace, source_key, external_id)
);
CREATE INDEX feedback_item_listing ON feedback_item (workspace, created_at DESC, id DESC);
SELECT prodops_enable_rls('feedback_item');
