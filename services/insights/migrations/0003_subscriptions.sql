-- Outbound webhooks: subscriptions, one delivery per (subscription, event), every attempt kept.
CREATE TABLE subscription (
    id uuid PRIMARY KEY,
    workspace text NOT NULL,
    url text NOT NULL,
    description text,
    event_types text[] NOT NULL DEFAULT '{}',   -- empty: every signal type
    secret bytea NOT NULL,                       -- encrypted at rest (Fernet)
    enabled boolean NOT NULL DEFAULT true,
    disabled_at timestamptz,
    disabled_reason text,
    failing_since timestamptz,                   -- first failure since the last success
    consecutive_failures integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_listing ON subscription (workspace, created_at DESC, id DESC);
CREATE INDEX subscription_enabled ON subscription (workspace) WHERE enabled;
SELECT prodops_enable_rls('subscription');

CREATE TABLE outbound_delivery (
    id uuid PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES subscription (id) ON DELETE CASCADE,
    workspace text NOT NULL,
    event_id uuid NOT NULL,                      -- the webhook-id, the same on every retry
    event_type text NOT NULL,
    payload bytea NOT NULL,                      -- the CloudEvents JSON, sent byte for byte
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease uuid,                                  -- the dispatcher batch sending it right now
    created_at timestamptz NOT NULL DEFAULT now(),
    retried_at timestamptz,                      -- a manual retry restarts the retry horizon
    delivered_at timestamptz,
    last_error text,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX outbound_delivery_due ON outbound_delivery (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbound_delivery_listing
    ON outbound_delivery (subscription_id, created_at DESC, id DESC);
CREATE INDEX outbound_delivery_settled ON outbound_delivery (created_at) WHERE status <> 'pending';
SELECT prodops_enable_rls('outbound_delivery');

CREATE TABLE outbound_attempt (
    id uuid PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES outbound_delivery (id) ON DELETE CASCADE,
    workspace text NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status_code integer,                         -- null when no HTTP answer came
    error text,
    duration_ms integer NOT NULL
);
CREATE INDEX outbound_attempt_delivery ON outbound_attempt (delivery_id, attempted_at);
SELECT prodops_enable_rls('outbound_attempt');

-- Wake the dispatchers on commit; NOTIFY folds repeats within a transaction.
CREATE FUNCTION outbound_delivery_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('prodops_outbound_' || current_schema(), '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbound_delivery_notify AFTER INSERT ON outbound_delivery
    FOR EACH ROW EXECUTE FUNCTION outbound_delivery_notify();
