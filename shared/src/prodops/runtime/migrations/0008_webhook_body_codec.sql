-- Delivery bodies are compressed by the service (prodops.body_codec): the database stores them as
-- they come, out of line, without trying to compress them again. Rows stored before are
-- `identity` (their body is the vendor's, compressed by the database as before).
ALTER TABLE webhook_delivery
    ADD COLUMN body_codec text NOT NULL DEFAULT 'identity'
        CHECK (body_codec IN ('identity', 'lz4'));
ALTER TABLE webhook_delivery ALTER COLUMN body SET STORAGE EXTERNAL;
