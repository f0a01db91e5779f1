-- One word per concept: an outbound webhook is a *dispatch* with its *attempts*; *delivery* is
-- an inbound webhook's. The /v1 API keeps its words (`deliveries`, `delivery_id`), so only the
-- schema's internal names change here; rows, RLS policies and the trigger go with the table.
ALTER TABLE outbound_delivery RENAME TO outbound_dispatch;
ALTER TABLE outbound_attempt RENAME COLUMN delivery_id TO dispatch_id;

-- Constraints by what they are called, as PostgreSQL named them (from version 18 NOT NULL ones
-- too); renaming the primary and unique keys renames their indexes with them.
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT conrelid::regclass AS target, conname FROM pg_constraint
        WHERE conrelid IN ('outbound_dispatch'::regclass, 'outbound_attempt'::regclass)
          AND conname LIKE '%delivery%'
    LOOP
        EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I',
                       c.target, c.conname, replace(c.conname, 'delivery', 'dispatch'));
    END LOOP;
END
$$;

ALTER INDEX outbound_delivery_due RENAME TO outbound_dispatch_due;
ALTER INDEX outbound_delivery_listing RENAME TO outbound_dispatch_listing;
ALTER INDEX outbound_delivery_settled RENAME TO outbound_dispatch_settled;
ALTER INDEX outbound_attempt_delivery RENAME TO outbound_attempt_dispatch;

ALTER FUNCTION outbound_delivery_notify() RENAME TO outbound_dispatch_notify;
ALTER TRIGGER outbound_delivery_notify ON outbound_dispatch RENAME TO outbound_dispatch_notify;
