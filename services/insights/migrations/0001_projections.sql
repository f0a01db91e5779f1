-- The latest state of every aggregate insights has seen, gated by version: a redelivered or
-- reordered event can never replace newer state with older.
CREATE TABLE projection (
    workspace text NOT NULL,
    aggregate text NOT NULL,
    id text NOT NULL,
    version integer NOT NULL,
    deleted boolean NOT NULL DEFAULT false,
    state jsonb NOT NULL,
    event_id uuid NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, aggregate, id)
);
CREATE INDEX projection_live ON projection (workspace, aggregate) WHERE NOT deleted;
SELECT prodops_enable_rls('projection');
