"""Inbound webhooks: the endpoint, group-commit intake, sources, Standard Webhooks signatures."""
