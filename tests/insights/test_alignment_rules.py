"""Alignment and feedback weight rules (design.md §5), pure: no database, no broker."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from insights.rules.domain import (
    Alignment,
    AlignmentTotals,
    account_factor,
    alignment,
    alignment_changed,
    decay_to,
    feedback_base,
    feedback_weight,
    idle_objectives,
    in_window,
)
from insights.rules.policies import FeedbackWeightPolicy

NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)
POLICY = FeedbackWeightPolicy()
WEIGHTS = {"O1": 3.0, "O2": 1.0}


def totals(
    *,
    committed: float = 6,
    aligned: float = 4,
    evidence: float = 0,
    demand: float = 0,
    covered: float = 0,
    effort: Mapping[str, float] | None = None,
    weights: Mapping[str, float] = WEIGHTS,
) -> AlignmentTotals:
    return AlignmentTotals(
        committed_effort=committed,
        aligned_effort=aligned,
        evidence_effort=evidence,
        demand_total=demand,
        demand_covered=covered,
        objective_effort={"O1": 3.0, "O2": 1.0} if effort is None else effort,
        objective_weights=weights,
    )


# --- alignment ----------------------------------------------------------------------------------


def test_worked_example_effort_matching_weights_is_two_thirds_strategic() -> None:
    # A (3, O1), B (1, O2), C (2, no objective)
    result = alignment(totals())
    assert result.strategic == 66.7
    assert result.components["aligned_effort_share"] == 66.7
    assert result.components["allocation_fit"] == 100.0


def test_worked_example_moving_b_to_o1_drops_strategic_to_fifty() -> None:
    result = alignment(totals(effort={"O1": 4.0}))
    assert result.components["allocation_fit"] == 75.0
    assert result.strategic == 50.0


def test_customer_is_the_geometric_mean_of_coverage_and_evidence() -> None:
    result = alignment(totals(evidence=2.4, demand=10, covered=9))
    assert result.components["demand_coverage"] == 90.0
    assert result.components["evidence_ratio"] == 40.0
    assert result.customer == 60.0  # sqrt(0.9 * 0.4)
    assert result.alignment == 63.3  # (2/3 + 0.6) / 2


def test_without_demand_coverage_is_full() -> None:
    result = alignment(totals(evidence=6))
    assert result.components["demand_coverage"] == 100.0
    assert result.customer == 100.0


def test_empty_roadmap_scores_zero() -> None:
    empty = totals(committed=0, aligned=0, effort={}, demand=5, covered=0)
    result = alignment(empty)
    assert (result.alignment, result.strategic, result.customer) == (0.0, 0.0, 0.0)
    assert result.components == {
        "aligned_effort_share": 0.0,
        "allocation_fit": 0.0,
        "demand_coverage": 0.0,
        "evidence_ratio": 0.0,
    }


def test_float_noise_does_not_leak_into_scores() -> None:
    thirds = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
    exact = totals(committed=1, aligned=1, effort=thirds, weights={"a": 1, "b": 1, "c": 1})
    assert alignment(exact).components["allocation_fit"] == 100.0
    opposite = totals(aligned=0.3, effort={"O1": 0.1 + 0.2}, weights={"O2": 1.0})
    fit = alignment(opposite).components["allocation_fit"]
    assert math.copysign(1, fit) == 1.0  # 1 - 1.0000000000000002 must not read as -0.0
    assert alignment(totals(demand=10, covered=10.5)).components["demand_coverage"] == 100.0


def test_effort_left_as_float_noise_counts_as_nothing_committed() -> None:
    residue = totals(committed=1e-12, aligned=1e-12, evidence=1e-12, effort={"O1": 1e-12})
    assert alignment(residue).components["aligned_effort_share"] == 0.0
    assert alignment(residue).components["allocation_fit"] == 0.0
    assert idle_objectives(residue) == ["O1", "O2"]


def test_active_objectives_without_effort_are_idle() -> None:
    weights = {"O3": 1.0, "O1": 3.0, "O2": 1.0}
    assert idle_objectives(totals(effort={"O1": 4.0, "O2": 0.0}, weights=weights)) == ["O2", "O3"]


def test_alignment_changes_on_first_computation_or_band() -> None:
    def at(score: float) -> Alignment:
        return Alignment(alignment=score, strategic=score, customer=score, components={})

    assert alignment_changed(None, at(63.3))
    assert not alignment_changed(at(63.3), at(60.0))
    assert alignment_changed(at(63.3), at(59.9))
    assert alignment_changed(at(99.0), at(89.9))


# --- feedback weight ----------------------------------------------------------------------------


def test_feedback_ninety_days_old_weighs_half_of_a_new_one() -> None:
    new = feedback_weight("normal", NOW, None, NOW, POLICY)
    old = feedback_weight("normal", NOW - timedelta(days=90), None, NOW, POLICY)
    assert new == pytest.approx(1.0)
    assert old == pytest.approx(0.5)


def test_priority_scales_the_weight() -> None:
    assert feedback_weight("urgent", NOW, None, NOW, POLICY) == pytest.approx(4.0)
    assert feedback_weight("low", NOW, None, NOW, POLICY) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="critical"):
        feedback_base("critical", NOW, POLICY)


def test_account_of_ten_thousand_arr_weighs_one_plus_ln_two() -> None:
    assert account_factor(10_000, POLICY) == pytest.approx(1 + math.log(2))
    assert account_factor(0, POLICY) == 1.0
    assert account_factor(None, POLICY) == 1.0


def test_summed_bases_decayed_to_now_equal_the_summed_weights() -> None:
    ages = (0, 10, 45, 179)
    created = [NOW - timedelta(days=age) for age in ages]
    stored = sum(feedback_base("high", moment, POLICY) for moment in created)
    expected = sum(2 * 0.5 ** (age / 90) for age in ages)
    assert stored * decay_to(NOW, POLICY) == pytest.approx(expected)


def test_feedback_counts_for_one_hundred_eighty_days() -> None:
    assert in_window(NOW - timedelta(days=180), NOW, POLICY)
    assert not in_window(NOW - timedelta(days=180, seconds=1), NOW, POLICY)
    assert in_window(NOW + timedelta(minutes=1), NOW, POLICY)


@pytest.mark.parametrize(
    "body",
    [
        {"priority_factors": {"urgent": 0}},
        {"priority_factors": {"critical": 8}},
        {"arr_scale": -1},
        {"half_life_days": 0},
        {"window_days": 0},
        {"decay": "linear"},
    ],
    ids=["zero-factor", "unknown-priority", "arr-scale", "half-life", "window", "unknown"],
)
def test_invalid_feedback_weight_policy_is_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        FeedbackWeightPolicy.model_validate(body)


def test_feedback_weight_policy_defaults_are_the_design_values() -> None:
    assert FeedbackWeightPolicy().model_dump() == {
        "priority_factors": {"low": 0.5, "normal": 1.0, "high": 2.0, "urgent": 4.0},
        "arr_scale": 10_000.0,
        "half_life_days": 90.0,
        "window_days": 180,
    }
