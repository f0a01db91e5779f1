"""The signal engine: a batch's events into facts, then what they touched into signals.

Every batch goes through the one projection path (`insights.projection`): the consumer's fast
pass hands it the whole batch, its careful pass each event alone, in a savepoint. At the end of
the batch the contributions and signals its events touched are refreshed. Each workspace is
locked for the batch (in a fixed order, so replicas never deadlock): two replicas sharing the
consumer apply events of one workspace one batch at a time, and every sum they keep stays exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from opentelemetry.trace import SpanKind

from insights.projection import apply_events, contributions
from insights.projection import facts_sql as fsql
from insights.projection.contributions import REASON_METRICS, SCOPE_METRICS
from insights.projection.facts import AGGREGATES, Touch
from insights.rules.policies import FeedbackWeightPolicy, ReadinessPolicy
from insights.signals import alignment as signals
from insights.signals import sql as ssql
from insights.signals.launches import refresh_launches
from prodops.contract import Event, utcnow
from prodops.messaging.handlers import BulkHandler, Consumed, Handler
from prodops.runtime.db import Connection
from prodops.runtime.telemetry import current_traceparent, span_from_traceparent

log = logging.getLogger(__name__)

# The live consumer's durable name (and inbox key); the rebuild claims its events under it too.
CONSUMER = "insights-projections"
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('prodops.insights:' || $1, 0))"
_POLICIES = "SELECT kind, body FROM policy WHERE workspace = $1 AND kind = ANY($2::text[])"


async def lock_workspaces(conn: Connection, workspaces: Sequence[str]) -> None:
    """Serialise signal work per workspace across replicas (sorted: no deadlock)."""
    for ws in sorted(set(workspaces)):
        await conn.execute(_LOCK, ws)


async def load_policies(conn: Connection, ws: str) -> tuple[ReadinessPolicy, FeedbackWeightPolicy]:
    """The workspace's policies, or the defaults of design.md §5."""
    held = {
        r["kind"]: r["body"]
        for r in await conn.fetch(_POLICIES, ws, ["readiness", "feedback-weight"])
    }
    return (
        ReadinessPolicy.model_validate(held.get("readiness") or {}),
        FeedbackWeightPolicy.model_validate(held.get("feedback-weight") or {}),
    )


@dataclass
class SignalEngine:
    """Applies events to facts and, at the end of each batch, refreshes what they touched."""

    emit: bool = True
    touches: dict[str, Touch] = field(default_factory=dict)
    traces: dict[str, str | None] = field(default_factory=dict)

    def handlers(self) -> dict[str, Handler]:
        """One handler per state-carrying event type: the careful pass's, a batch of one."""
        return dict.fromkeys(AGGREGATES, self.apply)

    async def begin(self, conn: Connection, events: Sequence[Event]) -> None:
        """Lock the batch's workspaces before any of its events is applied."""
        self.touches, self.traces = {}, {}
        await lock_workspaces(conn, [e.workspace for e in events if e.type in AGGREGATES])

    async def apply(self, conn: Connection, event: Event) -> None:
        """Apply one event to the facts, noting what it touched."""
        await self._project(conn, [event])
        # The signals this batch moves continue the trace of the last event that moved them.
        self.traces[event.workspace] = current_traceparent()

    def bulk(self) -> BulkHandler:
        """Every state-carrying event type at once: the fast pass's whole batch."""
        return BulkHandler(frozenset(AGGREGATES), self.apply_all)

    async def apply_all(self, conn: Connection, consumed: Sequence[Consumed]) -> None:
        """Apply a batch's events as `apply` would one by one."""
        await self._project(conn, [c.event for c in consumed])
        for c in consumed:
            self.traces[c.event.workspace] = c.traceparent

    async def _project(self, conn: Connection, events: Sequence[Event]) -> None:
        for event in events:
            self.touches.setdefault(event.workspace, Touch())
        for ws, touch in (await apply_events(conn, events)).items():
            self.touches.setdefault(ws, Touch()).update(touch)

    async def end(self, conn: Connection, *, careful: bool = True) -> None:
        """Refresh the contributions and signals the batch touched (each guarded if careful)."""
        touches, self.touches = self.touches, {}
        for ws, touch in sorted(touches.items()):
            trace = self.traces.get(ws)
            with span_from_traceparent("refresh signals", trace, kind=SpanKind.INTERNAL):
                await refresh(conn, ws, touch, emit=self.emit, now=utcnow(), guarded=careful)


async def refresh(
    conn: Connection, ws: str, touch: Touch, *, emit: bool, now: datetime, guarded: bool = True
) -> None:
    """Contributions of touched groups and items, then the scopes and launches they move.

    Guarded, a signal that fails to refresh is left as it was and the others go on; else its
    failure raises (the consumer's fast pass, which then runs its batch again, guarded).
    """
    readiness, weight = await load_policies(conn, ws)
    ctx = signals.Context(ws=ws, now=now, readiness=readiness, feedback_weight=weight, emit=emit)
    item_keys: set[str] = set()
    changed = await contributions.recompute_groups(conn, ws, sorted(touch.groups), weight, now)
    item_keys.update(t for m, t, _ in changed if m == "item_demand")
    touch.scopes.update(t for m, t, _ in changed if m in SCOPE_METRICS)
    if item_keys:
        rows = await conn.fetch(fsql.ITEM_IDS_OF_KEYS, ws, sorted(item_keys))
        touch.items.update(r["id"] for r in rows)
    changed = await contributions.recompute_items(conn, ws, sorted(touch.items))
    touch.scopes.update(t for m, t, _ in changed if m in SCOPE_METRICS + REASON_METRICS)
    scopes = set(touch.scopes)
    if touch.all_scopes:
        scopes.update(r["target"] for r in await conn.fetch(ssql.ALL_SCOPES, ws))
    launches = set(touch.launches)
    if touch.item_keys:
        rows = await conn.fetch(ssql.LAUNCHES_OF_ITEMS, ws, sorted(touch.item_keys))
        launches.update(r["key"] for r in rows)
    alignments: list[tuple[str, Refresh]] = [
        (f"alignment {ws}/{scope or '*'}", partial(signals.refresh_alignment, conn, ctx, scope))
        for scope in sorted(scopes)
    ]
    keys = sorted(launches)

    async def everything() -> None:
        for _, refresh_one in alignments:
            await refresh_one()
        if keys:
            await refresh_launches(conn, ctx, keys)

    one_by_one = alignments + [
        (f"launch {ws}/{key}", partial(refresh_launches, conn, ctx, [key])) for key in keys
    ]
    if guarded:
        await _guarded(conn, everything, one_by_one)
    else:
        await everything()


Refresh = Callable[[], Coroutine[Any, Any, None]]


async def _guarded(
    conn: Connection, everything: Refresh, one_by_one: Sequence[tuple[str, Refresh]]
) -> None:
    """Every refresh, the launches' together; one that fails leaves its signal as it was.

    One signal that cannot be computed must not stop every event behind it: the tick tries it
    again later.
    """
    if len(one_by_one) > 1:
        # Fast: all in one savepoint. A failure sends them to the careful pass, a savepoint
        # each (two round trips per signal), so that only the failing one is left as it was.
        try:
            async with conn.transaction():
                await everything()
        except Exception:  # noqa: BLE001 - the careful pass logs which one failed
            log.info("a signal refresh failed; refreshing one at a time")
        else:
            return
    for what, refresh_one in one_by_one:
        try:
            async with conn.transaction():
                await refresh_one()
        except Exception:
            log.exception("signal %s could not be refreshed", what)


async def refresh_all(
    conn: Connection, ws: str, *, emit: bool, now: datetime, scopes: Iterable[str] = ()
) -> None:
    """Recompute every contribution and signal of a workspace, and alignments in `scopes` too.

    After a policy change, or a rebuild (whose item events named the scopes live ones refresh).
    """
    groups = await conn.fetch(fsql.ALL_GROUPS, ws)
    items = await conn.fetch(fsql.ALL_ITEMS, ws)
    launches = await conn.fetch(ssql.ALL_LAUNCHES, ws)
    touch = Touch(
        groups={r["group_id"] for r in groups},
        items={r["id"] for r in items},
        launches={r["key"] for r in launches},
        scopes=set(scopes),
        all_scopes=True,
    )
    await refresh(conn, ws, touch, emit=emit, now=now)
