"""Alignment signals from the totals: compute, store with history, emit when they move.

Launch readiness is in `launch_signals`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from insights.outbound import dispatcher as outbound
from insights.projection.contributions import SCOPE_METRICS
from insights.rules import domain
from insights.rules.policies import FeedbackWeightPolicy, ReadinessPolicy
from insights.signals import sql
from prodops.contract import (
    AlignmentChanged,
    Change,
    EventData,
    Reason,
    make_event,
    new_id,
)
from prodops.messaging import outbox
from prodops.runtime.db import Connection
from prodops.runtime.telemetry import current_traceparent


@dataclass(frozen=True)
class Context:
    """What every signal computation of one workspace in one batch shares."""

    ws: str
    now: datetime
    readiness: ReadinessPolicy
    feedback_weight: FeedbackWeightPolicy
    emit: bool = True  # False while rebuilding: no events, webhooks or history


async def emit(conn: Connection, ctx: Context, data: EventData) -> None:
    event = make_event(
        data, service="insights", workspace=ctx.ws, traceparent=current_traceparent()
    )
    await outbox.add(conn, event)
    await outbound.enqueue(conn, event)


async def history(conn: Connection, ctx: Context, kind: str, subject: str, value: Any) -> None:
    if ctx.emit:
        await conn.execute(sql.ADD_HISTORY, ctx.ws, kind, subject, ctx.now, new_id(), value)


# --- alignment ----------------------------------------------------------------------------------


async def alignment_totals(conn: Connection, ctx: Context, scope: str) -> domain.AlignmentTotals:
    """The sums one scope's alignment is computed from, demand decayed to now."""
    rows = await conn.fetch(sql.SCOPE_TOTALS, ctx.ws, scope, list(SCOPE_METRICS))
    sums: dict[str, float] = {}
    by_objective: dict[str, float] = {}
    linked: set[str] = set()
    for r in rows:
        if r["metric"] == "objective":
            by_objective[r["sub"]] = r["value"]
        elif r["metric"] == "links":
            linked.add(r["sub"])
        else:
            sums[r["metric"]] = r["value"]
    weights = {str(r["id"]): r["weight"] for r in await conn.fetch(sql.ACTIVE_OBJECTIVES, ctx.ws)}
    if scope:
        # An area answers to the objectives its items serve, not to every objective.
        weights = {o: w for o, w in weights.items() if o in linked}
    decay = domain.decay_to(ctx.now, ctx.feedback_weight)
    return domain.AlignmentTotals(
        committed_effort=sums.get("committed", 0.0),
        aligned_effort=sums.get("aligned", 0.0),
        evidence_effort=sums.get("evidence", 0.0),
        demand_total=sums.get("demand", 0.0) * decay,
        demand_covered=sums.get("covered", 0.0) * decay,
        objective_effort={o: by_objective.get(o, 0.0) for o in weights},
        objective_weights=weights,
    )


async def _alignment_reasons(
    conn: Connection, ctx: Context, scope: str, totals: domain.AlignmentTotals
) -> list[Reason]:
    reasons: list[Reason] = []
    idle = domain.idle_objectives(totals)
    if idle:
        reasons.append(
            Reason(
                code="objective_without_effort",
                message=f"{len(idle)} active objective(s) have no committed effort",
                evidence=idle,
            )
        )
    for code, metric, limit, message in (
        ("committed_without_objective", "unaligned", 10, "committed items serve no objective"),
        ("committed_without_evidence", "unevidenced", 10, "committed items have no feedback"),
        ("unaddressed_demand", "unaddressed", 5, "uncommitted items customers ask for most"),
    ):
        ids = [r["sub"] for r in await conn.fetch(sql.RANKED_ITEMS, ctx.ws, metric, scope, limit)]
        if ids:
            reasons.append(Reason(code=code, message=message, evidence=ids))
    if not scope:
        tags = [r["target"] for r in await conn.fetch(sql.UNADDRESSED_TAGS, ctx.ws)]
        if tags:
            reasons.append(
                Reason(
                    code="unaddressed_tags",
                    message="tags with the most demand no committed item covers",
                    evidence=tags,
                )
            )
    return reasons


async def refresh_alignment(conn: Connection, ctx: Context, scope: str) -> None:
    """Recompute one scope's alignment; store it, and emit if it moved a band."""
    totals = await alignment_totals(conn, ctx, scope)
    if (
        scope
        and not totals.committed_effort
        and not totals.demand_total
        and not totals.objective_weights
    ):
        await conn.execute(sql.DROP_ALIGNMENT_SIGNAL, ctx.ws, scope)
        return
    new = domain.alignment(totals)
    reasons = await _alignment_reasons(conn, ctx, scope, totals)
    row = await conn.fetchrow(sql.ALIGNMENT_SIGNAL, ctx.ws, scope)
    old = (
        None
        if row is None
        else domain.Alignment(
            row["alignment"], row["strategic"], row["customer"], row["components"]
        )
    )
    await conn.execute(
        sql.PUT_ALIGNMENT_SIGNAL,
        ctx.ws,
        scope,
        new.alignment,
        new.strategic,
        new.customer,
        new.components,
        [r.model_dump() for r in reasons],
        ctx.now,
    )
    if old is None or (old.alignment, old.strategic, old.customer) != (
        new.alignment,
        new.strategic,
        new.customer,
    ):
        value = {
            "alignment": new.alignment,
            "strategic": new.strategic,
            "customer": new.customer,
            "components": new.components,
        }
        await history(conn, ctx, "alignment", scope, value)
    if ctx.emit and domain.alignment_changed(old, new):
        await emit(
            conn,
            ctx,
            AlignmentChanged(
                area=scope or None,
                alignment=Change(from_=old.alignment if old else None, to=new.alignment),
                strategic=Change(from_=old.strategic if old else None, to=new.strategic),
                customer=Change(from_=old.customer if old else None, to=new.customer),
                reasons=reasons,
            ),
        )
