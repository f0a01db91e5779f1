"""Outbound webhooks: dispatches queued with their signals, signed, sent and retried."""
