"""The outbound webhook schema speaks of dispatches and their attempts, never of deliveries."""

from __future__ import annotations

from prodops.runtime.settings import Settings
from support import create_app, running

_NAMES = """
SELECT c.relname::text AS name FROM pg_class c
WHERE c.relnamespace = 'insights'::regnamespace AND c.relname LIKE 'outbound%'
UNION ALL
SELECT conname::text FROM pg_constraint
WHERE connamespace = 'insights'::regnamespace AND conname LIKE 'outbound%'
UNION ALL
SELECT proname::text FROM pg_proc
WHERE pronamespace = 'insights'::regnamespace AND proname LIKE 'outbound%'
UNION ALL
SELECT tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = 'insights'::regnamespace AND c.relname LIKE 'outbound%'
UNION ALL
SELECT table_name || '.' || column_name FROM information_schema.columns
WHERE table_schema = 'insights' AND table_name LIKE 'outbound%'
"""


async def test_outbound_tables_indexes_and_columns_are_named_after_dispatches(
    settings: Settings,
) -> None:
    app = create_app("insights", settings)
    async with running(app):
        names = {r["name"] for r in await app.state.pool.fetch(_NAMES)}
    assert {"outbound_dispatch", "outbound_attempt", "outbound_attempt.dispatch_id"} <= names
    assert {"outbound_dispatch_due", "outbound_dispatch_notify"} <= names
    # `delivered_at` is the /v1 field it is served as, beside the status `delivered`.
    api_field = "outbound_dispatch.delivered_at"
    assert sorted(n for n in names if "deliver" in n and n != api_field) == []
