"""HTTP conventions: problem details, auth, pagination, limits, idempotency, fast paths."""
