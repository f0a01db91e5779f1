-- Idempotency keys of POST requests: a claim while the first request runs (status NULL),
-- then its stored response, replayed to every retry with the same key until it expires.
CREATE TABLE idempotency_key (
    workspace text NOT NULL,
    key text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    request_hash text NOT NULL,
    status integer,
    headers jsonb,
    body bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (workspace, key)
);
CREATE INDEX idempotency_key_expires_at ON idempotency_key (expires_at);
SELECT prodops_enable_rls('idempotency_key');
