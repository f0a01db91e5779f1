"""Insights rules that need no I/O: launch readiness, alignment, and feedback weight."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from insights.rules.alignment import Alignment, AlignmentTotals, alignment, idle_objectives
from insights.rules.policies import FeedbackWeightPolicy, ReadinessPolicy
from insights.rules.readiness import (
    ChecklistEntry,
    LaunchFacts,
    LinkedIssue,
    Readiness,
    SupportWindow,
    findings,
    is_blocker,
    status,
)
from insights.rules.readiness_reasons import details, reasons
from insights.rules.scores import band, percent, ratio

__all__ = [
    "EPOCH",
    "Alignment",
    "AlignmentTotals",
    "ChecklistEntry",
    "LaunchFacts",
    "LinkedIssue",
    "Readiness",
    "SupportWindow",
    "account_factor",
    "alignment",
    "alignment_changed",
    "band",
    "days_since_epoch",
    "decay_to",
    "feedback_base",
    "feedback_weight",
    "idle_objectives",
    "in_window",
    "is_blocker",
    "launch_readiness",
    "readiness_changed",
]

# --- launch readiness ---------------------------------------------------------------------------


def launch_readiness(facts: LaunchFacts, policy: ReadinessPolicy, now: datetime) -> Readiness:
    """The launch's readiness at `now` under `policy` (design.md §5)."""
    found = findings(facts, policy, now)
    required = sum(1 for e in facts.checklist if e.required)
    issues = found.issues
    parts = {
        "checklist": ratio(required - len(found.incomplete), required, empty=1.0),
        "delivery": ratio(issues.total - issues.open, issues.total, empty=1.0),
        "quality": 1 / (1 + issues.open_bug_load),
        "schedule": found.schedule.component,
    }
    weights = policy.weights.model_dump()
    score = sum(weights[name] * value for name, value in parts.items())
    return Readiness(
        status=status(facts, found),
        score=percent(score),
        components={name: percent(value) for name, value in parts.items()},
        reasons=reasons(facts, policy, found),
        details=details(facts, policy, found),
    )


def readiness_changed(old: Readiness | None, new: Readiness) -> bool:
    """Whether to signal: the status changed, the score changed band, or it is the first."""
    # The first computation is a change: subscribers learn the launch's starting point.
    if old is None:
        return True
    return old.status != new.status or band(old.score) != band(new.score)


# --- alignment ----------------------------------------------------------------------------------


def alignment_changed(old: Alignment | None, new: Alignment) -> bool:
    """Whether to signal: alignment moved into another 10-point band, or it is the first."""
    if old is None:
        return True
    return band(old.alignment) != band(new.alignment)


# --- feedback weight ----------------------------------------------------------------------------

# Demand is kept as Σ weight·2^(t/h) with t counted from this fixed moment, so adding a feedback
# never rescales the others; reading multiplies by 2^(-now/h).
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_SECONDS_PER_DAY = 86_400.0


def days_since_epoch(moment: datetime) -> float:
    """Days (fractional) from EPOCH to `moment`, which must be timezone-aware."""
    return (moment - EPOCH).total_seconds() / _SECONDS_PER_DAY


def feedback_base(priority: str, created_at: datetime, policy: FeedbackWeightPolicy) -> float:
    """Priority factor * 2^(t/h): a feedback's weight before account and decay to now."""
    growth = math.exp2(days_since_epoch(created_at) / policy.half_life_days)
    return policy.priority_factors.of(priority) * growth


def account_factor(arr: float | None, policy: FeedbackWeightPolicy) -> float:
    """1 + ln(1 + ARR / scale), or 1 for feedback without an account."""
    if arr is None:
        return 1.0
    return 1 + math.log1p(max(arr, 0.0) / policy.arr_scale)


def decay_to(now: datetime, policy: FeedbackWeightPolicy) -> float:
    """2^(-now/h): turns a sum of bases into weights as of `now`."""
    return math.exp2(-days_since_epoch(now) / policy.half_life_days)


def feedback_weight(
    priority: str,
    created_at: datetime,
    arr: float | None,
    now: datetime,
    policy: FeedbackWeightPolicy,
) -> float:
    """Priority * account * 0.5^(age/h): one feedback's demand weight at `now`."""
    base = feedback_base(priority, created_at, policy)
    return base * account_factor(arr, policy) * decay_to(now, policy)


def in_window(created_at: datetime, now: datetime, policy: FeedbackWeightPolicy) -> bool:
    """Whether feedback created at `created_at` still counts toward demand at `now`."""
    # No upper bound: a created_at slightly ahead of our clock (a vendor's skew) still counts.
    return created_at >= now - timedelta(days=policy.window_days)
