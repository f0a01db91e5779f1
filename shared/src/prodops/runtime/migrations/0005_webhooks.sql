-- Inbound webhook sources (one per vendor integration of a workspace) and their deliveries.
CREATE TABLE webhook_source (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    provider text NOT NULL,
    name text NOT NULL,
    secret bytea NOT NULL,                   -- encrypted at rest (Fernet)
    previous_secret bytea,                   -- still verifies until previous_secret_expires_at
    previous_secret_expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
);
CREATE INDEX webhook_source_listing ON webhook_source (workspace, created_at DESC, id DESC);
SELECT prodops_enable_rls('webhook_source');

-- Every verified delivery, kept at least as long as vendors retry (72 hours): the unique key
-- makes a redelivery a no-op.
CREATE TABLE webhook_delivery (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    source_id uuid NOT NULL REFERENCES webhook_source (id) ON DELETE CASCADE,
    provider text NOT NULL,
    delivery_key text NOT NULL,
    event_type text NOT NULL,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
    error text,
    processed_at timestamptz,
    UNIQUE (source_id, delivery_key)
);
CREATE INDEX webhook_delivery_listing ON webhook_delivery (workspace, received_at DESC, id DESC);
CREATE INDEX webhook_delivery_failed ON webhook_delivery (workspace, received_at DESC)
    WHERE status = 'failed';
SELECT prodops_enable_rls('webhook_delivery');
