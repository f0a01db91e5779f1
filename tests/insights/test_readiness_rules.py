"""Launch readiness rules (design.md §5), pure: no database, no broker."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from insights.rules.domain import (
    ChecklistEntry,
    LaunchFacts,
    LinkedIssue,
    Readiness,
    SupportWindow,
    band,
    is_blocker,
    launch_readiness,
    readiness_changed,
)
from insights.rules.policies import ReadinessPolicy
from prodops.contract import TrackerPriority

NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)
TODAY = NOW.date()
POLICY = ReadinessPolicy()
QUIET = SupportWindow(recent=0, recent_negative=0, baseline=0, baseline_negative=0)


def issue(
    n: int,
    *,
    closed_days_ago: float | None = None,
    kind: Literal["bug", "feature", "task"] = "task",
    priority: TrackerPriority = "none",
    labels: tuple[str, ...] = (),
) -> LinkedIssue:
    closed_at = None if closed_days_ago is None else NOW - timedelta(days=closed_days_ago)
    return LinkedIssue(
        id=f"i{n:03}",
        key=f"SHOP-{n}",
        state="open" if closed_at is None else "closed",
        kind=kind,
        priority=priority,
        labels=labels,
        closed_at=closed_at,
    )


def entry(
    n: int, *, done: bool = False, required: bool = True, due: date | None = None
) -> ChecklistEntry:
    return ChecklistEntry(id=f"c{n}", title=f"Step {n}", required=required, done=done, due_date=due)


def launch(
    *,
    status: Any = "in_progress",
    target_in_days: int | None = 30,
    checklist: tuple[ChecklistEntry, ...] = (),
    issues: tuple[LinkedIssue, ...] = (),
    support: SupportWindow = QUIET,
) -> LaunchFacts:
    target = None if target_in_days is None else TODAY + timedelta(days=target_in_days)
    return LaunchFacts("L-1", status, target, checklist, issues, support)


def codes(readiness: Readiness) -> list[str]:
    return [reason.code for reason in readiness.reasons]


def evidence(readiness: Readiness, code: str) -> list[str]:
    return next(r.evidence for r in readiness.reasons if r.code == code)


# --- components ---------------------------------------------------------------------------------


def test_components_and_score_follow_the_formulas_with_the_default_weights() -> None:
    checklist = (entry(1, done=True), entry(2), entry(3, required=False))
    closed = tuple(issue(n, closed_days_ago=n) for n in (1, 2, 3))
    bugs = (issue(4, kind="bug", priority="medium"), issue(5, kind="bug", priority="low"))
    result = launch_readiness(launch(checklist=checklist, issues=closed + bugs), POLICY, NOW)
    # checklist 1/2, delivery 3/5, quality 1/(1 + 1 + 0.5); 2 open at 3/14 a day finish on day 9
    assert result.components == {
        "checklist": 50.0,
        "delivery": 60.0,
        "quality": 40.0,
        "schedule": 100.0,
    }
    assert result.score == 60.0  # 0.3*0.5 + 0.4*0.6 + 0.15*0.4 + 0.15*1
    assert result.status == "on_track"
    assert result.details["projected_finish"] == (TODAY + timedelta(days=9)).isoformat()
    assert result.details["slack_days"] == 21
    assert result.details["open_bug_load"] == 1.5
    assert (result.details["open_issues"], result.details["total_issues"]) == (2, 5)


def test_late_projection_lowers_schedule_by_slack_over_fourteen_days() -> None:
    # 2 closed in 14 days = 1/7 a day; 3 open finish in 21 days, 7 after a target 14 days away
    issues = (
        issue(1, closed_days_ago=1),
        issue(2, closed_days_ago=13),
        issue(3),
        issue(4),
        issue(5),
    )
    result = launch_readiness(launch(target_in_days=14, issues=issues), POLICY, NOW)
    assert result.details["slack_days"] == -7
    assert result.components["schedule"] == 50.0
    assert result.status == "at_risk"
    assert evidence(result, "schedule_slip") == ["i003", "i004", "i005"]


@pytest.mark.parametrize(
    ("target_in_days", "schedule", "status"), [(14, 100.0, "on_track"), (13, 92.9, "at_risk")]
)
def test_finishing_on_the_target_date_is_on_time_and_a_day_late_is_not(
    target_in_days: int, schedule: float, status: str
) -> None:
    # 1 closed in 14 days: the one open issue is projected to close in 14 days
    issues = (issue(1, closed_days_ago=5), issue(2))
    result = launch_readiness(launch(target_in_days=target_in_days, issues=issues), POLICY, NOW)
    assert result.components["schedule"] == schedule
    assert result.status == status


def test_schedule_bottoms_out_at_zero_when_far_behind() -> None:
    issues = (issue(1, closed_days_ago=1), *(issue(n) for n in range(2, 6)))
    result = launch_readiness(launch(target_in_days=5, issues=issues), POLICY, NOW)
    assert result.details["slack_days"] == -51
    assert result.components["schedule"] == 0.0


def test_open_work_with_nothing_closed_lately_halves_schedule() -> None:
    issues = (issue(1, closed_days_ago=20), issue(2))
    result = launch_readiness(launch(target_in_days=30, issues=issues), POLICY, NOW)
    assert result.components["schedule"] == 50.0
    assert evidence(result, "no_recent_throughput") == ["i002"]
    assert result.status == "on_track"  # the target is still more than 14 days away


def test_without_a_target_date_schedule_is_full_and_silent() -> None:
    result = launch_readiness(launch(target_in_days=None, issues=(issue(1),)), POLICY, NOW)
    assert result.components["schedule"] == 100.0
    assert not {"schedule_slip", "no_recent_throughput"} & set(codes(result))


def test_launch_without_linked_work_counts_as_delivered_and_says_so() -> None:
    result = launch_readiness(launch(checklist=(entry(1, done=True),)), POLICY, NOW)
    assert result.components["delivery"] == 100.0
    assert codes(result) == ["no_linked_work"]
    assert result.score == 100.0


# --- status -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["launched", "cancelled"])
def test_launched_or_cancelled_launch_keeps_its_status_even_when_blocked(status: str) -> None:
    blocked = launch(status=status, issues=(issue(1, priority="urgent"),))
    assert launch_readiness(blocked, POLICY, NOW).status == status


@pytest.mark.parametrize(
    ("labels", "priority"), [(("Blocker",), "low"), ((), "urgent")], ids=["label", "urgent"]
)
def test_open_blocker_blocks_the_launch(labels: tuple[str, ...], priority: TrackerPriority) -> None:
    issues = (issue(1, closed_days_ago=1), issue(2, labels=labels, priority=priority))
    result = launch_readiness(launch(issues=issues), POLICY, NOW)
    assert result.status == "blocked"
    assert evidence(result, "blocked_by_issue") == ["i002"]


def test_closed_blocker_does_not_block() -> None:
    closed = issue(1, closed_days_ago=1, labels=("blocker",), priority="urgent")
    assert not is_blocker(closed, POLICY)
    assert launch_readiness(launch(issues=(closed,)), POLICY, NOW).status == "ready"


def test_policy_decides_what_blocks() -> None:
    policy = ReadinessPolicy(blocker_labels=["Stop-Ship"], blocker_priorities=[])
    assert is_blocker(issue(1, labels=("stop-ship",)), policy)
    assert not is_blocker(issue(2, labels=("blocker",), priority="urgent"), policy)


def test_open_high_bug_puts_the_launch_at_risk() -> None:
    bug = issue(2, kind="bug", priority="high")
    result = launch_readiness(launch(issues=(issue(1, closed_days_ago=1), bug)), POLICY, NOW)
    assert result.status == "at_risk"
    assert evidence(result, "open_serious_bug") == ["i002"]
    assert result.components["quality"] == 33.3


def test_stalled_work_near_the_target_puts_the_launch_at_risk() -> None:
    result = launch_readiness(launch(target_in_days=14, issues=(issue(1),)), POLICY, NOW)
    assert result.status == "at_risk"


@pytest.mark.parametrize(("days", "expected"), [(7, "at_risk"), (8, "on_track")])
def test_open_required_entry_is_due_seven_days_before_the_target(days: int, expected: str) -> None:
    facts = launch(target_in_days=days, checklist=(entry(1, done=True), entry(2)))
    result = launch_readiness(facts, POLICY, NOW)
    assert result.status == expected
    assert ("checklist_due" in codes(result)) == (expected == "at_risk")
    assert evidence(result, "checklist_incomplete") == ["c2"]


def test_required_entry_past_its_own_due_date_puts_the_launch_at_risk() -> None:
    late = entry(1, due=TODAY - timedelta(days=1))
    on_time = entry(2, due=TODAY)
    result = launch_readiness(launch(target_in_days=None, checklist=(late, on_time)), POLICY, NOW)
    assert result.status == "at_risk"
    assert evidence(result, "checklist_due") == ["c1"]


def test_launch_with_checklist_done_and_every_issue_closed_is_ready() -> None:
    facts = launch(
        checklist=(entry(1, done=True), entry(2, required=False)),
        issues=(issue(1, closed_days_ago=3),),
    )
    result = launch_readiness(facts, POLICY, NOW)
    assert result.status == "ready"
    assert result.reasons == ()


def test_launch_with_open_work_on_schedule_is_on_track() -> None:
    issues = (issue(1, closed_days_ago=2), issue(2))
    result = launch_readiness(launch(issues=issues), POLICY, NOW)
    assert result.status == "on_track"
    assert codes(result) == ["open_issues"]


# --- support and reasons ------------------------------------------------------------------------


@pytest.mark.parametrize(("recent", "spike"), [(4, False), (5, True)])
def test_support_spike_is_more_than_twice_the_baseline_weekly_average(
    recent: int, spike: bool
) -> None:
    ids = tuple(f"f{n}" for n in reversed(range(recent)))
    support = SupportWindow(
        recent=recent, recent_negative=2, baseline=8, baseline_negative=0, recent_ids=ids
    )
    result = launch_readiness(launch(support=support), POLICY, NOW)
    assert result.details["support"]["baseline_weekly_average"] == 2.0
    assert result.details["support"]["spike"] is spike
    assert ("support_spike" in codes(result)) is spike
    if spike:
        assert evidence(result, "support_spike") == ["f0", "f1", "f2", "f3", "f4"]


@pytest.mark.parametrize(("recent", "spike"), [(2, False), (3, True)])
def test_first_feedback_on_a_quiet_launch_needs_three_items_to_spike(
    recent: int, spike: bool
) -> None:
    support = SupportWindow(recent=recent, recent_negative=0, baseline=0, baseline_negative=0)
    result = launch_readiness(launch(support=support), POLICY, NOW)
    assert result.details["support"]["spike"] is spike
    assert result.details["support"]["baseline_negative_share"] is None


def test_reasons_come_most_serious_first() -> None:
    issues = (issue(1, priority="urgent", kind="bug"), issue(2, closed_days_ago=1))
    facts = launch(target_in_days=3, checklist=(entry(1),), issues=issues)
    assert codes(launch_readiness(facts, POLICY, NOW)) == [
        "blocked_by_issue",
        "open_serious_bug",
        "schedule_slip",
        "checklist_due",
        "checklist_incomplete",
        "open_issues",
    ]


def test_evidence_is_capped_at_fifty_ids_most_severe_first() -> None:
    issues = tuple(issue(n, priority="low" if n < 55 else "high") for n in range(60))
    result = launch_readiness(launch(issues=issues), POLICY, NOW)
    open_issues = next(r for r in result.reasons if r.code == "open_issues")
    assert open_issues.message == "60 of 60 linked issues open"
    assert open_issues.evidence[:6] == ["i055", "i056", "i057", "i058", "i059", "i000"]
    assert len(open_issues.evidence) == 50


# --- change detection and policy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"), [(0, 0), (9.9, 0), (10, 1), (89.9, 8), (90, 9), (100, 9)]
)
def test_score_bands_are_ten_points_wide_with_100_in_the_top_band(
    score: float, expected: int
) -> None:
    assert band(score) == expected


def test_readiness_changes_on_first_computation_status_or_band() -> None:
    def at(status: str, score: float) -> Readiness:
        return Readiness(status, score, {}, (), {})

    assert readiness_changed(None, at("on_track", 61.0))
    assert not readiness_changed(at("on_track", 61.0), at("on_track", 69.9))
    assert readiness_changed(at("on_track", 61.0), at("on_track", 59.9))
    assert readiness_changed(at("on_track", 61.0), at("at_risk", 61.0))


def test_policy_weights_change_the_score() -> None:
    weights = {"checklist": 0, "delivery": 1, "quality": 0, "schedule": 0}
    policy = ReadinessPolicy.model_validate({"weights": weights})
    issues = (issue(1, closed_days_ago=1), issue(2), issue(3), issue(4))
    assert launch_readiness(launch(issues=issues), policy, NOW).score == 25.0


@pytest.mark.parametrize(
    "body",
    [
        {"weights": {"checklist": 0.5, "delivery": 0.5, "quality": 0.5, "schedule": 0}},
        {"weights": {"checklist": -0.1, "delivery": 0.8, "quality": 0.15, "schedule": 0.15}},
        {"bug_load": {"urgent": -1}},
        {"blocker_priorities": ["critical"]},
        {"throughput_window_days": 0},
        {"tick_minutes": 60},
        {"weights": {"checklist": 0.3, "delivery": 0.4, "quality": 0.15, "speed": 0.15}},
    ],
    ids=[
        "weights-sum",
        "negative-weight",
        "negative-load",
        "priority",
        "window",
        "unknown",
        "nested",
    ],
)
def test_invalid_readiness_policy_is_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ReadinessPolicy.model_validate(body)


def test_readiness_policy_round_trips_through_json() -> None:
    policy = ReadinessPolicy(blocker_labels=["blocker", "stop-ship"], slack_scale_days=7)
    assert ReadinessPolicy.model_validate_json(policy.model_dump_json()) == policy
