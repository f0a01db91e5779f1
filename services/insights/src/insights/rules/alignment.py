"""Alignment (design.md §5): how well committed effort follows objectives and customer demand."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from insights.rules.scores import NOISE, percent, ratio, unit


@dataclass(frozen=True)
class AlignmentTotals:
    """The sums alignment is computed from, for a workspace or one product area.

    `objective_*` are keyed by active objective id; an item's effort is split evenly among its
    active objectives. Demand is already decayed to now.
    """

    committed_effort: float
    aligned_effort: float
    evidence_effort: float
    demand_total: float
    demand_covered: float
    objective_effort: Mapping[str, float]
    objective_weights: Mapping[str, float]


@dataclass(frozen=True)
class Alignment:
    """Alignment, strategic and customer scores (0-100) with their components * 100."""

    alignment: float
    strategic: float
    customer: float
    components: dict[str, float]


def allocation_fit(totals: AlignmentTotals) -> float:
    """1 - ½ Σ |effort share - weight share| over active objectives; 0 with no aligned effort."""
    weight_total = sum(totals.objective_weights.values())
    # Without weights there is no target allocation to fit (effort without an active objective
    # cannot be aligned, so this only happens on inconsistent totals).
    if totals.aligned_effort <= NOISE or weight_total <= NOISE:
        return 0.0
    # Sorted so the float sum, and so the score, does not depend on mapping order.
    objectives = sorted(set(totals.objective_weights) | set(totals.objective_effort))
    gap = sum(
        abs(
            totals.objective_effort.get(o, 0.0) / totals.aligned_effort
            - totals.objective_weights.get(o, 0.0) / weight_total
        )
        for o in objectives
    )
    return unit(1 - gap / 2)


def alignment(totals: AlignmentTotals) -> Alignment:
    """The alignment of `totals` as design.md §5 defines it."""
    share = unit(ratio(totals.aligned_effort, totals.committed_effort, empty=0.0))
    fit = allocation_fit(totals)
    coverage = unit(ratio(totals.demand_covered, totals.demand_total, empty=1.0))
    # Nothing committed is evidence of nothing: 0, like aligned_effort_share, so an empty
    # roadmap scores 0 rather than a perfect customer score.
    evidence = unit(ratio(totals.evidence_effort, totals.committed_effort, empty=0.0))
    strategic = share * fit
    customer = math.sqrt(coverage * evidence)
    return Alignment(
        alignment=percent((strategic + customer) / 2),
        strategic=percent(strategic),
        customer=percent(customer),
        components={
            "aligned_effort_share": percent(share),
            "allocation_fit": percent(fit),
            "demand_coverage": percent(coverage),
            "evidence_ratio": percent(evidence),
        },
    )


def idle_objectives(totals: AlignmentTotals) -> list[str]:
    """Active objectives with no committed effort, sorted by id."""
    return sorted(
        objective
        for objective in totals.objective_weights
        if totals.objective_effort.get(objective, 0.0) <= NOISE
    )
