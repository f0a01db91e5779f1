-- Transactional outbox: events are written with the domain change and published by the relay.
CREATE TABLE outbox (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    workspace text NOT NULL,
    subject text NOT NULL,
    type text NOT NULL,
    payload bytea NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at timestamptz
);
CREATE INDEX outbox_unsent ON outbox (position) WHERE sent_at IS NULL;
CREATE INDEX outbox_created_at ON outbox (created_at);
SELECT prodops_enable_rls('outbox');

-- Wake the relay on commit; NOTIFY is transactional and folds repeats within a transaction.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('prodops_outbox_' || current_schema(), '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
