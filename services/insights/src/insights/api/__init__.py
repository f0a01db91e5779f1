"""The insights HTTP API: signals, demand, policies, subscriptions and the summary."""
