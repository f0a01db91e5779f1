"""GitLab project webhooks: issues and merge requests as tracker issue snapshots.

Two schemes verify: the legacy `X-Gitlab-Token` (the secret itself, compared in constant time)
and the newer signing token, sent as Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
`webhook-signature`; the secret must then be GitLab's `whsec_…` signing token). Either passes.
The dedup key is `Idempotency-Key` (17.4+), else `X-Gitlab-Event-UUID`, else the body hash; the
event type is `X-Gitlab-Event` + `.` + `object_attributes.action` when there is one. No handshake.

`Issue Hook` (and `Confidential Issue Hook`) maps to `<path>#<iid>`, `Merge Request Hook` to
`<path>!<iid>` with a `mr:`-prefixed id; `merged` closes it. Priority comes from labels, else from
the incident `severity`. A snapshot is complete, like GitHub's, with one known gap: GitLab's hooks
carry only `milestone_id`, never the milestone's title (gitlab-org/gitlab#218295), so `milestone`
is set only when a payload includes a `milestone` object; a null `milestone_id` clears it, and
otherwise it is None (unknown) until `roadmap.gitlab_milestones` reads the title through the API
(`milestone_ref()` names what to read).

Ignored: `Note Hook`, `Release Hook` and every other hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeGuard

from fastapi.responses import Response

from prodops.contract import TrackerPriority
from prodops.webhooks import standard as standard_webhooks
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    body_hash,
    json_object,
    matches_one,
    required_header,
)
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import IssueKind, TrackerIssueSnapshot, kind_of, priority_from_labels

TOKEN_HEADER = "x-gitlab-token"  # noqa: S105 - a header name, not a secret
EVENT_HEADER = "x-gitlab-event"
# Not X-Gitlab-Webhook-UUID: that one names the hook, the same for all of its deliveries.
DEDUP_HEADERS = ("idempotency-key", "x-gitlab-event-uuid")
SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# Confidential issues arrive under their own header but in the same shape.
ISSUE_HOOKS = {"Issue Hook", "Confidential Issue Hook"}
MERGE_REQUEST_HOOK = "Merge Request Hook"

_STATES: dict[str, Literal["open", "closed"]] = {
    "opened": "open",
    "reopened": "open",
    "locked": "open",  # a merge request while it is being merged
    "closed": "closed",
    "merged": "closed",
}
# When `state` is missing, the action tells it.
_ACTION_STATES = {"open": "opened", "reopen": "reopened", "close": "closed", "merge": "merged"}
_SEVERITY: dict[str, TrackerPriority] = {
    "critical": "urgent",
    "high": "high",
    "medium": "medium",
    "low": "low",
    "unknown": "none",
}


class GitLab:
    """GitLab: the secret token or a Standard Webhooks signature; Idempotency-Key dedup."""

    name = "gitlab"

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        """Raise SignatureError unless the token or the signature is made with one of `secrets`."""
        headers = webhook.headers
        token = headers.get(TOKEN_HEADER)
        signed = all(h in headers for h in SIGNED_HEADERS)
        if token is None and not signed:
            raise SignatureError(f"missing {TOKEN_HEADER} or webhook-signature headers")
        if token is not None and _token_matches(token, secrets):
            return
        if not signed:
            raise SignatureError(f"{TOKEN_HEADER} does not match")
        standard_webhooks.verify(
            [s for s in secrets if s],
            message_id=headers["webhook-id"],
            timestamp=headers["webhook-timestamp"],
            signature_header=headers["webhook-signature"],
            body=webhook.body,
            now=now,
            tolerance=tolerance,
        )

    def identify(self, webhook: InboundWebhook) -> Identity:
        """`Idempotency-Key`, `X-Gitlab-Event-UUID` or the body hash; the hook and its action."""
        event = required_header(webhook, EVENT_HEADER)
        attributes = json_object(webhook.body).get("object_attributes")
        action = attributes.get("action") if isinstance(attributes, dict) else None
        event_type = f"{event}.{action}" if isinstance(action, str) and action else event
        keys = (webhook.headers.get(h, "").strip() for h in DEDUP_HEADERS)
        return Identity(next((k for k in keys if k), None) or body_hash(webhook), event_type)

    def handshake(self, webhook: InboundWebhook) -> Response | None:  # noqa: ARG002
        """GitLab sends no setup request."""
        return None


PROVIDER = GitLab()


def snapshots(event_type: str, payload: Any) -> list[TrackerIssueSnapshot]:
    """The issue of an issue hook or the merge request of a merge request hook; else []."""
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")  # noqa: TRY004 - mapper contract
    hook = event_type.partition(".")[0]
    if hook in ISSUE_HOOKS:
        return [_snapshot(payload, is_merge_request=False)]
    if hook == MERGE_REQUEST_HOOK:
        return [_snapshot(payload, is_merge_request=True)]
    return []


def _snapshot(payload: dict[str, Any], *, is_merge_request: bool) -> TrackerIssueSnapshot:
    attributes = payload.get("object_attributes")
    project = payload.get("project")
    if not isinstance(attributes, dict) or not isinstance(project, dict):
        raise ValueError("payload has no object_attributes or project")  # noqa: TRY004
    ident, iid, path = (
        attributes.get("id"),
        attributes.get("iid"),
        project.get("path_with_namespace"),
    )
    if not isinstance(ident, int) or not isinstance(iid, int) or not path:
        raise ValueError("object_attributes has no id or iid, or project no path_with_namespace")
    state = _state(attributes)
    labels = _labels(attributes.get("labels"), payload.get("labels"))
    return TrackerIssueSnapshot(
        provider="gitlab",
        # Issue and merge request ids are separate sequences: the prefix keeps them apart.
        external_id=f"mr:{ident}" if is_merge_request else str(ident),
        key=f"{path}!{iid}" if is_merge_request else f"{path}#{iid}",
        url=attributes.get("url"),
        title=attributes.get("title"),
        state=_STATES[state],
        state_reason=_state_reason(attributes),
        kind=_kind(labels, attributes),
        priority=priority_from_labels(labels) or _severity(attributes.get("severity")),
        labels=labels,
        assignees=_assignees(payload),
        milestone=_milestone(attributes.get("milestone")),
        cleared=frozenset({"milestone"}) if _no_milestone(attributes) else frozenset(),
        is_pull_request=is_merge_request,
        merged=state == "merged" if is_merge_request else None,
        created_at=parse_time(attributes.get("created_at")),
        closed_at=_closed_at(attributes) if _STATES[state] == "closed" else None,
    )


def parse_time(value: Any) -> datetime | None:
    """GitLab's `2013-12-03T17:23:34Z` and its older `2013-12-03 17:23:34 UTC`, aware."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parsed = datetime.fromisoformat(text.removesuffix(" UTC"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _state(attributes: dict[str, Any]) -> str:
    state = attributes.get("state") or _ACTION_STATES.get(attributes.get("action") or "")
    if state not in _STATES:
        raise ValueError(f"unknown state {state!r}")
    return str(state)


def _closed_at(attributes: dict[str, Any]) -> datetime | None:
    # Merge request hooks may carry only `merged_at` for a merged one.
    return parse_time(attributes.get("closed_at") or attributes.get("merged_at"))


def _state_reason(attributes: dict[str, Any]) -> str | None:
    # A moved or duplicated issue is closed in place, pointing at the other one.
    if attributes.get("moved_to_id"):
        return "moved"
    if attributes.get("duplicated_to_id"):
        return "duplicated"
    return None


def _labels(own: Any, top_level: Any) -> list[str]:
    found = own if isinstance(own, list) else top_level if isinstance(top_level, list) else []
    return [label["title"] for label in found if isinstance(label, dict) and label.get("title")]


def _kind(labels: list[str], attributes: dict[str, Any]) -> IssueKind:
    # GitLab's own type is "issue" for most: only an incident says more than the labels.
    issue_type = attributes.get("issue_type") or attributes.get("type")
    if isinstance(issue_type, str) and issue_type.strip().lower() == "incident":
        return "bug"
    return kind_of(labels)


def _severity(value: Any) -> TrackerPriority:
    return _SEVERITY.get(value.strip().lower(), "none") if isinstance(value, str) else "none"


def _assignees(payload: dict[str, Any]) -> list[str]:
    # GitLab leaves `assignees` out when there are none; older hooks send a single `assignee`.
    people = payload.get("assignees")
    if not isinstance(people, list):
        single = payload.get("assignee")
        people = [single] if isinstance(single, dict) else []
    return [p["username"] for p in people if isinstance(p, dict) and p.get("username")]


def _milestone(value: Any) -> str | None:
    title = value.get("title") if isinstance(value, dict) else None
    return title if isinstance(title, str) and title else None


def _no_milestone(attributes: dict[str, Any]) -> bool:
    # An absent key says nothing (older or trimmed payloads); only an explicit null clears.
    return "milestone_id" in attributes and attributes["milestone_id"] is None


@dataclass(frozen=True)
class MilestoneRef:
    """The milestone a GitLab issue or merge request names by id, and where to look it up."""

    project_id: int
    project_path: str
    milestone_id: int


def milestone_ref(event_type: str, payload: Any) -> MilestoneRef | None:
    """The milestone of an issue or merge request hook whose payload lacks its title; else None."""
    hook = event_type.partition(".")[0]
    if hook not in {*ISSUE_HOOKS, MERGE_REQUEST_HOOK} or not isinstance(payload, dict):
        return None
    attributes, project = payload.get("object_attributes"), payload.get("project")
    if not isinstance(attributes, dict) or not isinstance(project, dict):
        return None
    if _milestone(attributes.get("milestone")) is not None:
        return None
    project_id, milestone_id = project.get("id"), attributes.get("milestone_id")
    path = project.get("path_with_namespace")
    if not _is_id(project_id) or not _is_id(milestone_id) or not isinstance(path, str) or not path:
        return None
    return MilestoneRef(project_id=project_id, project_path=path, milestone_id=milestone_id)


def _is_id(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_matches(token: str, secrets: Sequence[str]) -> bool:
    # An empty secret would let an empty header through.
    return matches_one(token, (s for s in secrets if s))
