"""Linear webhooks: issues created, updated and removed.

`Linear-Signature` is the hex HMAC-SHA256 of the raw body, keyed with the secret Linear issued. The
body's `webhookTimestamp` (ms) must be within the configured tolerance of now (Linear's SDK allows
60 s); older payloads without it are accepted. The dedup key is `Linear-Delivery` (the body hash
without it) and the event type is `<type>.<action>`, e.g. `Issue.update`. No setup handshake.

`data` is the whole issue as it is now (`updatedFrom` only holds the previous values of what
changed), so a snapshot of it is complete. Linear leaves null fields out of `data`; when only ids
are sent (`labelIds`, `projectId`), names stay unknown (None) unless there are none to name.
The cycle is `{id, number, name}` from `data.cycle` (newer payloads), or its id alone from
`cycleId` (older ones); with neither, the issue is in no cycle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from fastapi.responses import Response

from prodops.contract import TrackerCycle, TrackerPriority
from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    MalformedWebhookError,
    body_hash,
    hex_hmac,
    json_object,
    matches_one,
    number_of,
    signature_header,
    text_of,
)
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import (
    ClearableField,
    TrackerIssueSnapshot,
    kind_of,
    linear_priority,
    priority_from_labels,
)

SIGNATURE_HEADER = "linear-signature"
DELIVERY_HEADER = "linear-delivery"
TIMESTAMP_FIELD = "webhookTimestamp"
ISSUE_EVENTS = {"Issue.create", "Issue.update"}
REMOVED = "Issue.remove"
_CLOSED = {"completed", "canceled"}
# Far beyond any real timestamp, yet exact as a float.
_LATEST_MS = 2**53


def sign(secret: str, body: bytes) -> str:
    """The `Linear-Signature` Linear sends for `body`."""
    return hex_hmac(secret, body)


class Linear:
    """Linear: hex HMAC of the body, a body timestamp, `Linear-Delivery` keys, no handshake."""

    name = "linear"

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        """Raise SignatureError unless `Linear-Signature` matches one of `secrets`, in time."""
        offered = signature_header(webhook, SIGNATURE_HEADER)
        if not matches_one(offered, (sign(secret, webhook.body) for secret in secrets)):
            raise SignatureError(f"{SIGNATURE_HEADER} does not match")
        # Checked after the signature: the timestamp is in the body, trusted only once signed.
        _check_timestamp(webhook.body, now=now, tolerance=tolerance)

    def identify(self, webhook: InboundWebhook) -> Identity:
        """`Linear-Delivery` (else the body hash) and `<type>.<action>` from the body."""
        body = json_object(webhook.body)
        kind, action = text_of(body.get("type")), text_of(body.get("action"))
        if kind is None or action is None:
            raise MalformedWebhookError("body has no type or action")
        key = webhook.headers.get(DELIVERY_HEADER, "").strip()
        return Identity(key or body_hash(webhook), f"{kind}.{action}")

    def handshake(self, webhook: InboundWebhook) -> Response | None:  # noqa: ARG002
        """Linear sends no setup request."""
        return None


PROVIDER = Linear()


def _check_timestamp(body: bytes, *, now: float, tolerance: float) -> None:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    # Not a JSON object: identify() answers 400, which says more than a 401 would.
    sent = parsed.get(TIMESTAMP_FIELD) if isinstance(parsed, dict) else None
    if sent is None:
        return  # payloads from before Linear added the field carry none
    # json.loads takes NaN, which no comparison would reject. isfinite() only on floats: a JSON
    # integer may be too large for a float, and converting it would raise OverflowError (a 500).
    not_finite = isinstance(sent, float) and not math.isfinite(sent)
    if isinstance(sent, bool) or not isinstance(sent, int | float) or not_finite:
        raise SignatureError(f"{TIMESTAMP_FIELD} is not a number")
    if abs(sent) > _LATEST_MS or abs(now - sent / 1000) > tolerance:
        raise SignatureError(f"{TIMESTAMP_FIELD} is outside the tolerance")


def snapshots(event_type: str, payload: Any) -> list[TrackerIssueSnapshot]:
    """The issue of an `Issue.create/update/remove` event; [] for comments and the rest."""
    if event_type not in ISSUE_EVENTS and event_type != REMOVED:
        return []
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise MalformedWebhookError(f"{event_type} has no data")
    issue: dict[str, Any] = payload["data"]
    external_id, key = text_of(issue.get("id")), _key(issue)
    if external_id is None or key is None:
        raise MalformedWebhookError(f"{event_type} issue has no id or identifier")
    # Older payloads carry the address next to `data`, newer ones inside it.
    url = text_of(issue.get("url")) or text_of(payload.get("url"))
    if event_type == REMOVED:
        return [
            TrackerIssueSnapshot(
                provider="linear", external_id=external_id, key=key, url=url, deleted=True
            )
        ]
    return [_issue(external_id, key, url, issue)]


def _issue(
    external_id: str, key: str, url: str | None, issue: dict[str, Any]
) -> TrackerIssueSnapshot:
    labels = _labels(issue)
    cycle = _cycle(issue)
    state_type = text_of(_dict(issue.get("state")).get("type"))
    state: Literal["open", "closed"] | None = None
    if state_type is not None:
        state = "closed" if state_type in _CLOSED else "open"
    return TrackerIssueSnapshot(
        provider="linear",
        external_id=external_id,
        key=key,
        url=url,
        title=text_of(issue.get("title")),
        state=state,
        state_reason=state_type if state == "closed" else None,
        kind=None if labels is None else kind_of(labels),
        priority=_priority(issue.get("priority"), labels),
        labels=labels,
        estimate=number_of(issue.get("estimate")),
        assignees=_assignees(issue),
        project=text_of(_dict(issue.get("project")).get("name")),
        parent_key=text_of(_dict(issue.get("parent")).get("identifier")),
        created_at=_datetime(issue.get("createdAt")),
        closed_at=_datetime(issue.get("completedAt") or issue.get("canceledAt")),
        cycle=cycle,
        cleared=_cleared(issue, cycle),
    )


def _cleared(issue: dict[str, Any], cycle: TrackerCycle | None) -> frozenset[ClearableField]:
    """What the issue is known to be out of: Linear leaves a null cycle or project out."""
    cleared: set[ClearableField] = set() if cycle else {"cycle"}
    project = text_of(_dict(issue.get("project")).get("id")) or text_of(issue.get("projectId"))
    if project is None:
        cleared.add("project")
    return frozenset(cleared)


def _cycle(issue: dict[str, Any]) -> TrackerCycle | None:
    """The issue's cycle; None when it is in none (Linear leaves a null `cycleId` out)."""
    cycle = _dict(issue.get("cycle"))
    ident = text_of(cycle.get("id")) or text_of(issue.get("cycleId"))
    if ident is None:
        return None
    number = number_of(cycle.get("number"))
    return TrackerCycle(
        id=ident,
        number=int(number) if number is not None and number.is_integer() else None,
        name=text_of(cycle.get("name")),
    )


def _key(issue: dict[str, Any]) -> str | None:
    """`identifier` (ENG-12); older payloads only have the team key and the number."""
    identifier = text_of(issue.get("identifier"))
    team, number = text_of(_dict(issue.get("team")).get("key")), text_of(issue.get("number"))
    if identifier is None and team is not None and number is not None:
        identifier = f"{team}-{number}"
    return identifier


def _labels(issue: dict[str, Any]) -> list[str] | None:
    labels = issue.get("labels")
    if isinstance(labels, list):
        names = (text_of(label.get("name")) for label in labels if isinstance(label, dict))
        return [name for name in names if name]
    # Ids alone name nothing; an empty list of ids does say "no labels".
    return [] if issue.get("labelIds") == [] else None


def _priority(value: Any, labels: list[str] | None) -> TrackerPriority | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    priority = linear_priority(value)
    # 0 is "No priority": a `P1`-style label then speaks.
    if priority == "none" and labels:
        return priority_from_labels(labels) or priority
    return priority


def _assignees(issue: dict[str, Any]) -> list[str] | None:
    name = text_of(_dict(issue.get("assignee")).get("name"))
    if name is not None:
        return [name]
    # Without `assignee` or `assigneeId` the issue is unassigned (Linear omits nulls).
    return None if "assigneeId" in issue else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _datetime(value: Any) -> datetime | None:
    text = text_of(value)
    return None if text is None else datetime.fromisoformat(text)
