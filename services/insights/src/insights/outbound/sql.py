"""Every SQL statement of outbound webhooks: subscriptions, dispatches and their attempts.

Statements the API runs are scoped by row-level security; the dispatcher's run as the schema
owner and so see every workspace. The tables keep the names they were created with
(`outbound_delivery`, `outbound_attempt.delivery_id`): renaming them would break the replicas
still running during a rolling upgrade, for a word.
"""

from __future__ import annotations

# --- subscriptions (API) ---------------------------------------------------------------------

INSERT_SUBSCRIPTION = """
INSERT INTO subscription (id, workspace, url, description, event_types, secret)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *
"""

LIST_SUBSCRIPTIONS = """
SELECT * FROM subscription
WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
ORDER BY created_at DESC, id DESC LIMIT $3
"""

GET_SUBSCRIPTION = "SELECT * FROM subscription WHERE id = $1"

# $4 says whether the description was sent at all, so a patch can clear it with null.
PATCH_SUBSCRIPTION = """
UPDATE subscription SET
    url = coalesce($2, url),
    event_types = coalesce($3, event_types),
    description = CASE WHEN $4 THEN $5 ELSE description END,
    updated_at = now()
WHERE id = $1
RETURNING *
"""

DELETE_SUBSCRIPTION = "DELETE FROM subscription WHERE id = $1"

ENABLE_SUBSCRIPTION = """
UPDATE subscription SET
    enabled = true, disabled_at = NULL, disabled_reason = NULL,
    failing_since = NULL, consecutive_failures = 0, updated_at = now()
WHERE id = $1
RETURNING *
"""

# Held dispatches go out at once; one still leased to a dispatcher is left to finish.
RESUME_HELD = """
UPDATE outbound_delivery SET next_attempt_at = now()
WHERE subscription_id = $1 AND status = 'pending' AND lease IS NULL
"""

ROTATE_SUBSCRIPTION = """
UPDATE subscription SET secret = $2, updated_at = now() WHERE id = $1 RETURNING *
"""

WAKE_DISPATCHERS = "SELECT pg_notify('prodops_outbound_' || current_schema(), '')"

# --- dispatches (API) ------------------------------------------------------------------------

# Attempts come in the same statement, so they match the dispatch row (one snapshot).
_DISPATCH = """
SELECT d.id, d.event_id, d.event_type, d.status,
       CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at,
       d.created_at, d.delivered_at, d.last_error,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'attempted_at', a.attempted_at, 'status_code', a.status_code,
                      'error', a.error, 'duration_ms', a.duration_ms)
                  ORDER BY a.attempted_at, a.id)
           FROM outbound_attempt a WHERE a.delivery_id = d.id
       ), '[]'::jsonb) AS attempts
FROM outbound_delivery d
"""

LIST_DISPATCHES = (
    _DISPATCH
    + """
WHERE d.subscription_id = $1
  AND ($2::text IS NULL OR d.status = $2)
  AND ($3::timestamptz IS NULL OR (d.created_at, d.id) < ($3, $4::uuid))
ORDER BY d.created_at DESC, d.id DESC LIMIT $5
"""
)

GET_DISPATCH = _DISPATCH + "WHERE d.id = $1 AND d.subscription_id = $2\n"

# A manual retry restarts the retry horizon (from retried_at).
RETRY_DISPATCH = """
UPDATE outbound_delivery
SET status = 'pending', next_attempt_at = now(), retried_at = now(), last_error = NULL
WHERE id = $1 AND subscription_id = $2 AND status = 'failed'
RETURNING id
"""

INSERT_SETTLED_DISPATCH = """
INSERT INTO outbound_delivery (
    id, subscription_id, workspace, event_id, event_type, payload, status, attempts,
    delivered_at, last_error
)
VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9)
"""

INSERT_ATTEMPT = """
INSERT INTO outbound_attempt (id, delivery_id, workspace, attempted_at, status_code, error,
                              duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

# --- enqueue and the dispatcher --------------------------------------------------------------

ENQUEUE = """
INSERT INTO outbound_delivery (id, subscription_id, workspace, event_id, event_type, payload)
SELECT gen_random_uuid(), s.id, s.workspace, $2, $3, $4
FROM subscription s
WHERE s.workspace = $1 AND s.enabled
  AND (cardinality(s.event_types) = 0 OR $3 = ANY (s.event_types))
ON CONFLICT (subscription_id, event_id) DO NOTHING
"""

# The row locks last only for this statement: pushing next_attempt_at ahead is the lease that
# keeps other dispatchers off the row while it is sent, outside any transaction.
CLAIM = """
WITH due AS (
    SELECT d.id FROM outbound_delivery d
    JOIN subscription s ON s.id = d.subscription_id
    WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.enabled
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE outbound_delivery d
SET lease = $2, next_attempt_at = now() + $3::float8 * interval '1 second'
FROM due, subscription s
WHERE d.id = due.id AND s.id = d.subscription_id
RETURNING d.id, d.workspace, d.subscription_id, d.event_id, d.payload, d.attempts, s.url,
    s.secret
"""

# Only the holder of the lease records: a dispatcher that lost it (it outlived the lease)
# must not overwrite what another one did since.
RECORD_SUCCESS = """
UPDATE outbound_delivery
SET status = 'delivered', delivered_at = now(), attempts = attempts + 1, last_error = NULL,
    lease = NULL
WHERE id = $1 AND lease = $2 AND status = 'pending'
RETURNING subscription_id
"""

RECORD_FAILURE = """
UPDATE outbound_delivery SET
    attempts = attempts + 1,
    last_error = $3,
    lease = NULL,
    next_attempt_at = now() + $4::float8 * interval '1 second',
    status = CASE
        WHEN now() + $4::float8 * interval '1 second'
             > coalesce(retried_at, created_at) + $5::float8 * interval '1 hour'
        THEN 'failed' ELSE 'pending' END
WHERE id = $1 AND lease = $2 AND status = 'pending'
RETURNING subscription_id, status
"""

SUBSCRIPTION_SUCCEEDED = """
UPDATE subscription SET failing_since = NULL, consecutive_failures = 0
WHERE id = $1 AND (failing_since IS NOT NULL OR consecutive_failures > 0)
"""

SUBSCRIPTION_FAILED = """
UPDATE subscription SET
    failing_since = coalesce(failing_since, now()),
    consecutive_failures = consecutive_failures + 1
WHERE id = $1
RETURNING consecutive_failures, failing_since,
    enabled AND consecutive_failures >= $2
        AND failing_since <= now() - $3::float8 * interval '1 hour' AS should_disable
"""

DISABLE_SUBSCRIPTION = """
UPDATE subscription
SET enabled = false, disabled_at = now(), disabled_reason = $2, updated_at = now()
WHERE id = $1 AND enabled
"""

PURGE_SETTLED = """
DELETE FROM outbound_delivery
WHERE status <> 'pending' AND created_at < now() - $1::float8 * interval '1 hour'
"""
