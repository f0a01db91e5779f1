"""GitHub repository webhooks: issues and pull requests as tracker issue snapshots.

`X-Hub-Signature-256` is `sha256=` + the hex HMAC-SHA256 of the raw body, keyed with the secret's
own bytes; `X-GitHub-Delivery` is the dedup key (kept on manual redelivery); the event type is
`X-GitHub-Event` + `.` + body `action`; `ping` is the setup handshake. The hook must send
`application/json`: the form-encoded variant is refused as malformed.

GitHub sends the whole issue (or pull request) with every event, so every `issues.*` and
`pull_request.*` action maps to a complete snapshot: a `milestone` of None means "no milestone"
(after `demilestoned`), not "unknown". `deleted` and `transferred` (the issue left this repository)
mark it deleted. Pull request ids are prefixed `pr:`; the key is `<owner>/<repo>#<number>` for both.

Ignored: `issue_comment`, `milestone`, `release`, `ping`, and `issues.*` about a pull request
(GitHub also sends it as `pull_request.*`, under the pull request's own id). Known limitation: a
renamed milestone is not re-read; its issues pick up the new title on their next event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from fastapi.responses import JSONResponse, Response

from prodops.webhooks.provider import (
    Identity,
    InboundWebhook,
    MalformedWebhookError,
    hex_hmac,
    matches_one,
    signature_header,
)
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import TrackerIssueSnapshot, kind_of, priority_from_labels

SIGNATURE_HEADER = "x-hub-signature-256"
DELIVERY_HEADER = "x-github-delivery"
EVENT_HEADER = "x-github-event"
PING_EVENT = "ping"
# An issue leaving the repository: deleted, or transferred (it gets a new id in the other one).
_GONE = {"deleted", "transferred"}


class _Action(msgspec.Struct):
    """What a delivery's identity needs of a GitHub body: its `action`."""

    action: object = None


_ACTION = msgspec.json.Decoder(_Action)


def _action(body: bytes) -> object:
    """The body's `action`; MalformedWebhookError (a 400) unless it is a JSON object.

    The rest of the body is checked but not built: parsing all of it for this one field is a
    cost every delivery would pay on the hot path. The normaliser, which maps it, parses it whole.
    """
    try:
        body.decode()  # what msgspec leaves unchecked in the strings it skips
        return _ACTION.decode(body).action
    except msgspec.ValidationError as exc:
        raise MalformedWebhookError("body is not a JSON object") from exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise MalformedWebhookError("body is not JSON") from exc


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` GitHub sends for `body`."""
    return "sha256=" + hex_hmac(secret, body)


class GitHub:
    """GitHub: hex HMAC-SHA256 of the body, `X-GitHub-Delivery` keys, a `ping` on setup."""

    name = "github"

    def verify(
        self,
        webhook: InboundWebhook,
        secrets: Sequence[str],
        *,
        now: float,  # noqa: ARG002 - the Provider signature; GitHub sends no timestamp
        tolerance: float,  # noqa: ARG002
    ) -> None:
        """Raise SignatureError unless `X-Hub-Signature-256` is made with one of `secrets`."""
        offered = signature_header(webhook, SIGNATURE_HEADER)
        # An empty secret would be an HMAC key anyone can use.
        expected = (sign(secret, webhook.body) for secret in secrets if secret)
        if not matches_one(offered, expected):
            raise SignatureError(f"{SIGNATURE_HEADER} does not match")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """`X-GitHub-Delivery` and `<X-GitHub-Event>.<action>` (the bare event without one)."""
        delivery = webhook.headers.get(DELIVERY_HEADER, "").strip()
        event = webhook.headers.get(EVENT_HEADER, "").strip()
        if not delivery or not event:
            raise MalformedWebhookError(f"missing {DELIVERY_HEADER} or {EVENT_HEADER} header")
        action = _action(webhook.body)
        if isinstance(action, str) and action:
            return Identity(delivery, f"{event}.{action}")
        return Identity(delivery, event)

    def handshake(self, webhook: InboundWebhook) -> Response | None:
        """Answer the `ping` GitHub sends when the hook is created."""
        if webhook.headers.get(EVENT_HEADER, "").strip() == PING_EVENT:
            return JSONResponse({"status": "pong"})
        return None


PROVIDER = GitHub()


def snapshots(event_type: str, payload: Any) -> list[TrackerIssueSnapshot]:
    """The issue of an `issues.*` event or the pull request of a `pull_request.*`; else []."""
    if not isinstance(payload, dict):
        raise ValueError("payload is not a JSON object")  # noqa: TRY004 - mapper contract
    event, _, action = event_type.partition(".")
    if event == "issues":
        issue = _required(payload, "issue")
        if "pull_request" in issue:
            return []
        return [_snapshot(payload, issue, action, is_pull_request=False)]
    if event == "pull_request":
        return [
            _snapshot(payload, _required(payload, "pull_request"), action, is_pull_request=True)
        ]
    return []


def _snapshot(
    payload: dict[str, Any], issue: dict[str, Any], action: str, *, is_pull_request: bool
) -> TrackerIssueSnapshot:
    repository = _required(payload, "repository")
    ident, number, full_name = issue.get("id"), issue.get("number"), repository.get("full_name")
    if not isinstance(ident, int) or not isinstance(number, int) or not full_name:
        raise ValueError("issue has no id, number or repository full_name")
    labels = _labels(issue, payload.get("label"), action)
    type_name = (issue.get("type") or {}).get("name")  # GitHub's issue types (Bug, Feature, Task)
    closed = issue.get("state") == "closed"
    return TrackerIssueSnapshot(
        provider="github",
        # Pull request and issue ids are separate sequences: the prefix keeps them apart.
        external_id=f"pr:{ident}" if is_pull_request else str(ident),
        key=f"{full_name}#{number}",
        url=issue.get("html_url"),
        title=issue.get("title"),
        state="closed" if closed else "open",
        state_reason=issue.get("state_reason"),
        kind=kind_of(labels, type_name if isinstance(type_name, str) else None),
        priority=priority_from_labels(labels) or "none",
        labels=labels,
        assignees=[a["login"] for a in issue.get("assignees") or [] if a.get("login")],
        milestone=(issue.get("milestone") or {}).get("title") or None,
        is_pull_request=is_pull_request,
        merged=_merged(issue) if is_pull_request else None,
        created_at=_datetime(issue.get("created_at")),
        # A reopened issue keeps its last close time on GitHub; open means not closed.
        closed_at=_datetime(issue.get("closed_at")) if closed else None,
        deleted=not is_pull_request and action in _GONE,
    )


def _labels(issue: dict[str, Any], changed: Any, action: str) -> list[str]:
    labels = [label["name"] for label in issue.get("labels") or [] if label.get("name")]
    name = changed.get("name") if isinstance(changed, dict) else None
    # The issue should already show the change, but samples (octokit's issues.unlabeled) keep
    # the removed label: the event's own `label` decides.
    if name and action == "unlabeled":
        labels = [label for label in labels if label != name]
    elif name and action == "labeled" and name not in labels:
        labels.append(name)
    return labels


def _merged(pull_request: dict[str, Any]) -> bool:
    merged = pull_request.get("merged")
    if isinstance(merged, bool):
        return merged
    return pull_request.get("merged_at") is not None


def _required(payload: dict[str, Any], field: str) -> dict[str, Any]:
    value = payload.get(field)
    if not isinstance(value, dict):
        raise ValueError(f"payload has no {field} object")  # noqa: TRY004
    return value


def _datetime(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
