"""Messaging: the transactional outbox, the idempotent inbox, consumers, the broker, wake-ups."""
