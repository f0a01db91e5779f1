-- Idempotent consumers: an event id is claimed in the same transaction as its effect.
CREATE TABLE inbox (
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    workspace text NOT NULL,
    type text NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX inbox_processed_at ON inbox (processed_at);

-- Events whose handler kept failing; listed over the API and replayable.
CREATE TABLE dead_letter (
    id uuid PRIMARY KEY,
    consumer text NOT NULL,
    event_id uuid NOT NULL,
    workspace text NOT NULL,
    type text NOT NULL,
    subject text NOT NULL,
    payload bytea NOT NULL,
    error text NOT NULL,
    deliveries integer NOT NULL,
    status text NOT NULL DEFAULT 'dead' CHECK (status IN ('dead', 'replayed')),
    created_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (consumer, event_id)
);
CREATE INDEX dead_letter_listing ON dead_letter (workspace, created_at DESC, id DESC);
SELECT prodops_enable_rls('dead_letter');
