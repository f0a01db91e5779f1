"""Launch readiness (design.md §5): plain rules over one launch's facts, with no I/O.

Dates are UTC days: `now` is read in UTC, and a target date is met by work finishing on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Literal

from insights.rules.policies import ReadinessPolicy
from prodops.contract import Reason, TrackerPriority

# The most ids a reason names as evidence.
MAX_EVIDENCE = 50
# A trickle of throughput against a big backlog projects past year 9999; 100 years is "never".
MAX_PROJECTION_DAYS = 36_500
_SEVERITY: dict[str, int] = {"urgent": 0, "high": 1, "medium": 2, "low": 3, "none": 4}
# Tracker priorities, most severe first (`issue_severity` in migration 0007 ranks them alike).
PRIORITIES: tuple[TrackerPriority, ...] = ("urgent", "high", "medium", "low", "none")


@dataclass(frozen=True)
class LinkedIssue:
    """A tracker issue linked to the launch or to one of its items."""

    id: str
    key: str
    state: Literal["open", "closed"]
    kind: Literal["bug", "feature", "task"]
    priority: TrackerPriority
    labels: tuple[str, ...]
    closed_at: datetime | None


@dataclass(frozen=True)
class ChecklistEntry:
    """One entry of the launch's checklist."""

    id: str
    title: str
    required: bool
    done: bool
    due_date: date | None


@dataclass(frozen=True)
class SupportWindow:
    """Feedback linked to the launch's items: the recent days, and the baseline days before."""

    recent: int
    recent_negative: int
    baseline: int
    baseline_negative: int
    recent_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssueSummary:
    """What readiness reads of a launch's linked issues: their counts and the ones it names."""

    total: int
    open: int
    closed_recently: int  # closed within the throughput window
    open_bug_load: float
    most_severe_open: tuple[str, ...]  # ids, by severity, then id; at most MAX_EVIDENCE
    blockers: tuple[LinkedIssue, ...]  # by severity, then id
    serious_bugs: tuple[LinkedIssue, ...]  # by severity, then id


@dataclass(frozen=True)
class LaunchFacts:
    """Everything launch readiness is computed from."""

    key: str
    status: Literal["planned", "in_progress", "launched", "cancelled"]
    target_date: date | None
    checklist: tuple[ChecklistEntry, ...]
    issues: tuple[LinkedIssue, ...]
    support: SupportWindow
    # What readiness reads of `issues`, when the database summarised them (`issues` then empty).
    summary: IssueSummary | None = None


@dataclass(frozen=True)
class Readiness:
    """A launch's readiness: status, 0-100 score, components * 100, reasons and details."""

    status: str
    score: float
    components: dict[str, float]
    reasons: tuple[Reason, ...]
    details: dict[str, Any]


@dataclass(frozen=True)
class Schedule:
    """The schedule component and the projection behind it."""

    component: float
    throughput_per_day: float
    projected_finish: date | None
    slack_days: int | None
    stalled: bool


@dataclass(frozen=True)
class Findings:
    """What holds about a launch now: the inputs of its status and reasons."""

    issues: IssueSummary
    incomplete: list[ChecklistEntry]
    due: list[ChecklistEntry]
    schedule: Schedule
    days_to_target: int | None
    stalled_near_target: bool
    spike: bool


def is_blocker(issue: LinkedIssue, policy: ReadinessPolicy) -> bool:
    """An open issue with a blocker label (any case) or of a blocker priority."""
    if issue.state != "open":
        return False
    wanted = folded_labels(policy)
    labelled = any(label.strip().casefold() in wanted for label in issue.labels)
    return labelled or issue.priority in policy.blocker_priorities


def folded_labels(policy: ReadinessPolicy) -> frozenset[str]:
    """The policy's blocker labels as an issue's labels are compared with them."""
    return _folded(tuple(policy.blocker_labels))


@cache
def _folded(labels: tuple[str, ...]) -> frozenset[str]:
    # Asked once per open issue of every launch refreshed: fold a policy's labels once.
    return frozenset(label.strip().casefold() for label in labels)


def is_serious_bug(issue: LinkedIssue, policy: ReadinessPolicy) -> bool:
    """An open bug of a priority that puts the launch at risk."""
    serious = issue.priority in policy.serious_bug_priorities
    return issue.state == "open" and issue.kind == "bug" and serious


def open_bug_load(issues: tuple[LinkedIssue, ...], policy: ReadinessPolicy) -> float:
    """The summed load of the open bugs."""
    bugs = (i for i in issues if i.state == "open" and i.kind == "bug")
    return sum(policy.bug_load.of(i.priority) for i in bugs)


def schedule(
    facts: LaunchFacts, issues: IssueSummary, policy: ReadinessPolicy, now: datetime
) -> Schedule:
    """Throughput over the window, projected finish, slack, and the schedule component."""
    open_count = issues.open
    throughput = issues.closed_recently / policy.throughput_window_days
    finish = None
    if open_count and throughput:
        days = min(open_count / throughput, MAX_PROJECTION_DAYS)
        finish = (now + timedelta(days=days)).astimezone(UTC).date()
    if facts.target_date is None or not open_count:
        return Schedule(1.0, throughput, finish, None, stalled=False)
    if finish is None:
        return Schedule(policy.no_throughput_schedule, 0.0, None, None, stalled=True)
    slack = (facts.target_date - finish).days
    component = 1.0 if slack >= 0 else max(0.0, 1 + slack / policy.slack_scale_days)
    return Schedule(component, throughput, finish, slack, stalled=False)


def _closed_since(issue: LinkedIssue, since: datetime) -> bool:
    return issue.closed_at is not None and issue.closed_at >= since


def severity_order(issue: LinkedIssue) -> tuple[int, str]:
    """Most severe first, then by id: the order readiness names issues in."""
    return _SEVERITY[issue.priority], issue.id


def summarize(
    issues: Iterable[LinkedIssue], policy: ReadinessPolicy, now: datetime
) -> IssueSummary:
    """The summary of `issues` (`launch_signals` has the database make it for many launches)."""
    listed = tuple(issues)
    since = now - timedelta(days=policy.throughput_window_days)
    ordered = sorted((i for i in listed if i.state == "open"), key=severity_order)
    return IssueSummary(
        total=len(listed),
        open=len(ordered),
        closed_recently=sum(1 for i in listed if i.state == "closed" and _closed_since(i, since)),
        open_bug_load=open_bug_load(listed, policy),
        most_severe_open=tuple(i.id for i in ordered[:MAX_EVIDENCE]),
        blockers=tuple(i for i in ordered if is_blocker(i, policy)),
        serious_bugs=tuple(i for i in ordered if is_serious_bug(i, policy)),
    )


def issue_summary(facts: LaunchFacts, policy: ReadinessPolicy, now: datetime) -> IssueSummary:
    """The launch's summary from the database, or made from its issues."""
    return facts.summary or summarize(facts.issues, policy, now)


def support_spike(support: SupportWindow, policy: ReadinessPolicy) -> bool:
    """Whether recent linked feedback is well above what the baseline days predict."""
    # The baseline rate scaled to the recent days: the design's "twice the weekly average"
    # when the recent window is 7 days. The floor keeps a first ticket from being a spike.
    expected = support.baseline * policy.support_recent_days / policy.support_baseline_days
    floor = policy.support_spike_min_recent
    return support.recent >= floor and support.recent > policy.support_spike_ratio * expected


def findings(facts: LaunchFacts, policy: ReadinessPolicy, now: datetime) -> Findings:
    """Every condition readiness looks at, evaluated at `now`."""
    today = now.astimezone(UTC).date()
    to_target = None if facts.target_date is None else (facts.target_date - today).days
    issues = issue_summary(facts, policy, now)
    incomplete = [e for e in facts.checklist if e.required and not e.done]
    sched = schedule(facts, issues, policy, now)
    return Findings(
        issues=issues,
        incomplete=incomplete,
        due=[e for e in incomplete if _is_due(e, to_target, today, policy)],
        schedule=sched,
        days_to_target=to_target,
        stalled_near_target=(
            sched.stalled and to_target is not None and to_target <= policy.at_risk_target_days
        ),
        spike=support_spike(facts.support, policy),
    )


def _is_due(
    entry: ChecklistEntry, to_target: int | None, today: date, policy: ReadinessPolicy
) -> bool:
    # Beyond the design's "within 7 days of the target", an entry past its own due date is late
    # too: its owner set that date, and the hourly tick should surface it the day after.
    near_target = to_target is not None and to_target <= policy.checklist_due_days
    return near_target or (entry.due_date is not None and entry.due_date < today)


def status(facts: LaunchFacts, found: Findings) -> str:
    """The first status of design.md §5 that holds."""
    if facts.status in ("launched", "cancelled"):
        return facts.status
    if found.issues.blockers:
        return "blocked"
    slip = found.schedule.slack_days is not None and found.schedule.slack_days < 0
    if slip or found.stalled_near_target or found.issues.serious_bugs or found.due:
        return "at_risk"
    if not found.incomplete and not found.issues.open:
        return "ready"
    return "on_track"
