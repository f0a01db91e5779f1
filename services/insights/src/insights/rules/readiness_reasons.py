"""What a readiness says beside its score: reasons with evidence ids, and the numbers behind it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from insights.rules.policies import ReadinessPolicy
from insights.rules.readiness import MAX_EVIDENCE, Findings, LaunchFacts, LinkedIssue
from prodops.contract import Reason

# Most serious first, so a client showing one reason shows the one that decided the status.
REASON_ORDER = (
    "blocked_by_issue",
    "open_serious_bug",
    "schedule_slip",
    "no_recent_throughput",
    "checklist_due",
    "checklist_incomplete",
    "open_issues",
    "no_linked_work",
    "support_spike",
)


def reasons(facts: LaunchFacts, policy: ReadinessPolicy, found: Findings) -> tuple[Reason, ...]:
    """Every condition that holds, most serious first, each with at most 50 evidence ids."""
    found_reasons = [
        *_issue_reasons(found),
        *_schedule_reasons(facts, policy, found),
        *_checklist_reasons(facts, found),
    ]
    if found.spike:
        support = facts.support
        message = (
            f"{support.recent} linked feedback in the last {policy.support_recent_days} days, "
            f"against {support.baseline} in the {policy.support_baseline_days} days before"
        )
        found_reasons.append(_reason("support_spike", message, sorted(support.recent_ids)))
    return tuple(sorted(found_reasons, key=lambda r: REASON_ORDER.index(r.code)))


def _issue_reasons(found: Findings) -> list[Reason]:
    out: list[Reason] = []
    issues = found.issues
    if issues.blockers:
        out.append(_about_issues("blocked_by_issue", "Blocked by", issues.blockers))
    if issues.serious_bugs:
        out.append(_about_issues("open_serious_bug", "Serious bugs open:", issues.serious_bugs))
    if issues.open:
        message = f"{issues.open} of {issues.total} linked issues open"
        out.append(_reason("open_issues", message, list(issues.most_severe_open)))
    if not issues.total:
        message = "No tracker issues are linked to the launch or its items"
        out.append(_reason("no_linked_work", message, []))
    return out


def _schedule_reasons(facts: LaunchFacts, policy: ReadinessPolicy, found: Findings) -> list[Reason]:
    sched = found.schedule
    open_ids = list(found.issues.most_severe_open)
    if sched.slack_days is not None and sched.slack_days < 0:
        message = (
            f"Open work is projected to finish on {sched.projected_finish}, "
            f"{-sched.slack_days} days after the target date {facts.target_date}"
        )
        return [_reason("schedule_slip", message, open_ids)]
    if sched.stalled:
        message = (
            f"{found.issues.open} linked issues open and none closed "
            f"in the last {policy.throughput_window_days} days"
        )
        return [_reason("no_recent_throughput", message, open_ids)]
    return []


def _checklist_reasons(facts: LaunchFacts, found: Findings) -> list[Reason]:
    out: list[Reason] = []
    if found.due:
        message = f"Required checklist entries due: {_names(e.title for e in found.due)}"
        out.append(_reason("checklist_due", message, [e.id for e in found.due]))
    if found.incomplete:
        required = sum(1 for e in facts.checklist if e.required)
        message = f"{len(found.incomplete)} of {required} required checklist entries open"
        out.append(_reason("checklist_incomplete", message, [e.id for e in found.incomplete]))
    return out


def details(facts: LaunchFacts, policy: ReadinessPolicy, found: Findings) -> dict[str, Any]:
    """The numbers behind the components, JSON-ready."""
    sched = found.schedule
    support = facts.support
    finish = sched.projected_finish
    return {
        "open_issues": found.issues.open,
        "closed_issues": found.issues.total - found.issues.open,
        "total_issues": found.issues.total,
        "open_bug_load": found.issues.open_bug_load,
        "required_checklist": sum(1 for e in facts.checklist if e.required),
        "required_checklist_open": len(found.incomplete),
        "throughput_per_day": round(sched.throughput_per_day, 3),
        "projected_finish": None if finish is None else finish.isoformat(),
        "slack_days": sched.slack_days,
        "days_to_target": found.days_to_target,
        "support": {
            "recent": support.recent,
            "recent_negative_share": _share(support.recent_negative, support.recent),
            "baseline": support.baseline,
            "baseline_weekly_average": round(
                support.baseline * 7 / policy.support_baseline_days, 2
            ),
            "baseline_negative_share": _share(support.baseline_negative, support.baseline),
            "spike": found.spike,
        },
    }


def _share(part: int, whole: int) -> float | None:
    # None, not 0: with no feedback there is no share of negative feedback to report.
    return round(part / whole, 3) if whole else None


def _about_issues(code: str, lead: str, issues: Sequence[LinkedIssue]) -> Reason:
    return _reason(code, f"{lead} {_names(i.key for i in issues)}", [i.id for i in issues])


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    shown = ", ".join(listed[:3])
    return shown if len(listed) <= 3 else f"{shown} and {len(listed) - 3} more"


def _reason(code: str, message: str, evidence: list[str]) -> Reason:
    return Reason(code=code, message=message, evidence=evidence[:MAX_EVIDENCE])
