"""The weights, factors and thresholds of insights' signals (design.md §5), per workspace.

Every default is the design's value. The policies are stored as jsonb and returned by
`GET /v1/policies/...`, so they stay plain JSON: no field holds anything but numbers and strings.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from prodops.contract import TrackerPriority

MAX_DAYS = 3650
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Weight = Annotated[float, Field(ge=0, le=1)]
Load = Annotated[float, Field(ge=0, le=1000)]
Factor = Annotated[float, Field(gt=0, le=1000)]
_BLOCKER_PRIORITIES: tuple[TrackerPriority, ...] = ("urgent",)
_SERIOUS_BUG_PRIORITIES: tuple[TrackerPriority, ...] = ("urgent", "high")


class Policy(BaseModel):
    """A frozen policy that rejects unknown fields, so a typo is an error, not a default."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ReadinessWeights(Policy):
    """How much each component counts toward the readiness score; they sum to 1."""

    checklist: Weight = Field(default=0.30, description="Weight of required checklist done")
    delivery: Weight = Field(default=0.40, description="Weight of linked issues closed")
    quality: Weight = Field(default=0.15, description="Weight of 1 / (1 + open-bug load)")
    schedule: Weight = Field(default=0.15, description="Weight of schedule slack")

    @model_validator(mode="after")
    def _sum_to_one(self) -> Self:
        total = self.checklist + self.delivery + self.quality + self.schedule
        if abs(total - 1) > 1e-6:
            raise ValueError(f"readiness weights must sum to 1, not {total:g}")
        return self


class BugLoad(Policy):
    """The load one open bug of each tracker priority adds to the quality component."""

    urgent: Load = Field(default=4.0, description="Load of an open urgent bug")
    high: Load = Field(default=2.0, description="Load of an open high-priority bug")
    medium: Load = Field(default=1.0, description="Load of an open medium-priority bug")
    low: Load = Field(default=0.5, description="Load of an open low-priority bug")
    none: Load = Field(default=0.5, description="Load of an open bug without priority")

    def of(self, priority: TrackerPriority) -> float:
        """The load of one open bug of `priority`."""
        return float(getattr(self, priority))


class ReadinessPolicy(Policy):
    """How launch readiness is scored and when a launch is blocked, at risk or ready."""

    weights: ReadinessWeights = Field(
        default_factory=ReadinessWeights, description="Component weights; they sum to 1"
    )
    bug_load: BugLoad = Field(
        default_factory=BugLoad, description="Quality load of one open bug, by priority"
    )
    blocker_labels: list[Label] = Field(
        default_factory=lambda: ["blocker"],
        max_length=50,
        description="An open issue with one of these labels (any case) blocks the launch",
    )
    blocker_priorities: list[TrackerPriority] = Field(
        default_factory=lambda: list(_BLOCKER_PRIORITIES),
        description="An open issue of one of these priorities blocks the launch",
    )
    serious_bug_priorities: list[TrackerPriority] = Field(
        default_factory=lambda: list(_SERIOUS_BUG_PRIORITIES),
        description="An open bug of one of these priorities puts the launch at risk",
    )
    throughput_window_days: int = Field(
        default=14, ge=1, le=MAX_DAYS, description="Days of closed issues that make throughput"
    )
    slack_scale_days: float = Field(
        default=14.0, gt=0, le=MAX_DAYS, description="Days late at which schedule reaches 0"
    )
    no_throughput_schedule: float = Field(
        default=0.5, ge=0, le=1, description="Schedule when work is open but none closed lately"
    )
    at_risk_target_days: int = Field(
        default=14,
        ge=0,
        le=MAX_DAYS,
        description="With no recent throughput, a target this close puts the launch at risk",
    )
    checklist_due_days: int = Field(
        default=7,
        ge=0,
        le=MAX_DAYS,
        description="A required checklist entry open this close to the target is at risk",
    )
    support_recent_days: int = Field(
        default=7, ge=1, le=MAX_DAYS, description="Days of recent linked feedback"
    )
    support_baseline_days: int = Field(
        default=28, ge=1, le=MAX_DAYS, description="Days before the recent ones that set the norm"
    )
    support_spike_ratio: float = Field(
        default=2.0,
        gt=0,
        le=1000,
        description="Recent volume above this times the baseline weekly average is a spike",
    )
    # Not in design.md: without a floor, one ticket on a launch that had none is a "spike".
    # 1 gives the design's bare ratio rule.
    support_spike_min_recent: int = Field(
        default=3,
        ge=1,
        le=1_000_000,
        description="Fewest recent feedback items that can make a spike",
    )


class PriorityFactors(Policy):
    """How much one feedback item of each priority weighs."""

    low: Factor = Field(default=0.5, description="Factor of low-priority feedback")
    normal: Factor = Field(default=1.0, description="Factor of normal-priority feedback")
    high: Factor = Field(default=2.0, description="Factor of high-priority feedback")
    urgent: Factor = Field(default=4.0, description="Factor of urgent feedback")

    def of(self, priority: str) -> float:
        """The factor of `priority`; an unknown priority is an error, not a silent default."""
        if priority not in type(self).model_fields:
            raise ValueError(f"unknown feedback priority {priority!r}")
        return float(getattr(self, priority))


class FeedbackWeightPolicy(Policy):
    """How a feedback item's demand weight is computed and how long it counts."""

    priority_factors: PriorityFactors = Field(
        default_factory=PriorityFactors, description="Weight factor by feedback priority"
    )
    arr_scale: float = Field(
        default=10_000.0,
        gt=0,
        description="Account factor is 1 + ln(1 + ARR / arr_scale)",
    )
    # Demand is kept as Σ weight·2^(t/h) from 2020-01-01; a floor on h keeps 2^(t/h) a finite
    # float (below 2^1024) until about 2100.
    half_life_days: float = Field(
        default=90.0, ge=30, le=MAX_DAYS, description="Days after which a feedback weighs half"
    )
    window_days: int = Field(
        default=180, ge=1, le=MAX_DAYS, description="Feedback older than this stops counting"
    )
