-- Deliveries are stored first and normalised after, oldest first: find those waiting at once.
CREATE INDEX webhook_delivery_received ON webhook_delivery (received_at, id)
    WHERE status = 'received';
