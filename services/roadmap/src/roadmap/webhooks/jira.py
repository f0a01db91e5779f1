"""Jira Cloud admin webhooks (with a secret): issues created, updated and deleted.

`X-Hub-Signature` is `sha256=` + the hex HMAC-SHA256 of the raw body, keyed with the secret exactly
as typed into Jira. The dedup key is `X-Atlassian-Webhook-Identifier` (the body hash without it)
and the event type is the body's `webhookEvent`. There is no setup handshake.

An issue event carries the whole issue in `issue.fields`; an update also lists what changed in
`changelog.items[]` (matched on `fieldId`, as display names are localised). For the fields it
records, the changelog wins: labels, issue type and priority take its `toString`, and each
fixVersions item is applied by version id (`from` removed, `to` added, named by the fields or
else by `toString`). On a consistent payload that changes nothing; it repairs payloads whose
`fields` lag the change they announce (fixVersions empty after a v1 → v2 change). Status stays
with `fields.status.statusCategory` because the changelog names only the workflow status.

The estimate is the story points of Jira Cloud's "Story point estimate" field, `customfield_10016`;
other sites' story-point fields are not guessed. The parent is `fields.parent`, else the classic
"Epic Link" field `customfield_10014`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi.responses import Response

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
    TrackerIssueSnapshot,
    jira_priority,
    kind_of,
    priority_from_labels,
)

SIGNATURE_HEADER = "x-hub-signature"
DELIVERY_HEADER = "x-atlassian-webhook-identifier"
SIGNATURE_METHOD = "sha256="
CREATED = "jira:issue_created"
UPDATED = "jira:issue_updated"
DELETED = "jira:issue_deleted"
STORY_POINTS = "customfield_10016"
EPIC_LINK = "customfield_10014"


def sign(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature` Jira sends for `body`."""
    return SIGNATURE_METHOD + hex_hmac(secret, body)


class Jira:
    """Jira Cloud: `sha256=` hex HMAC of the body, the webhook identifier, no handshake."""

    name = "jira"

    def verify(
        self,
        webhook: InboundWebhook,
        secrets: Sequence[str],
        *,
        # No timestamp check: Jira signs none, and its retries can arrive ~30 min late.
        now: float,  # noqa: ARG002 - the Provider signature
        tolerance: float,  # noqa: ARG002
    ) -> None:
        """Raise SignatureError unless `X-Hub-Signature` is made with one of `secrets`."""
        offered = signature_header(webhook, SIGNATURE_HEADER)
        if not offered.startswith(SIGNATURE_METHOD):
            raise SignatureError(f"{SIGNATURE_HEADER} is not {SIGNATURE_METHOD}")
        if not matches_one(offered, (sign(secret, webhook.body) for secret in secrets)):
            raise SignatureError(f"{SIGNATURE_HEADER} does not match")

    def identify(self, webhook: InboundWebhook) -> Identity:
        """`X-Atlassian-Webhook-Identifier` (else the body hash) and the body's `webhookEvent`."""
        event = text_of(json_object(webhook.body).get("webhookEvent"))
        if event is None:
            raise MalformedWebhookError("body has no webhookEvent")
        key = webhook.headers.get(DELIVERY_HEADER, "").strip()
        return Identity(key or body_hash(webhook), event)

    def handshake(self, webhook: InboundWebhook) -> Response | None:  # noqa: ARG002
        """Jira sends no setup request."""
        return None


PROVIDER = Jira()


def snapshots(event_type: str, payload: Any) -> list[TrackerIssueSnapshot]:
    """The issue of an issue created/updated/deleted event; [] for comments and the rest."""
    if event_type not in {CREATED, UPDATED, DELETED}:
        return []
    if not isinstance(payload, dict) or not isinstance(payload.get("issue"), dict):
        raise MalformedWebhookError(f"{event_type} has no issue")
    issue: dict[str, Any] = payload["issue"]
    external_id, key = text_of(issue.get("id")), text_of(issue.get("key"))
    if external_id is None or key is None:
        raise MalformedWebhookError(f"{event_type} issue has no id or key")
    url = _browse_url(issue.get("self"), key)
    if event_type == DELETED:
        return [
            TrackerIssueSnapshot(
                provider="jira", external_id=external_id, key=key, url=url, deleted=True
            )
        ]
    fields = _dict(issue.get("fields"))
    changes = _changes(payload) if event_type == UPDATED else {}
    return [_issue(external_id, key, url, fields, changes)]


def _issue(
    external_id: str,
    key: str,
    url: str | None,
    fields: dict[str, Any],
    changes: dict[str, list[dict[str, Any]]],
) -> TrackerIssueSnapshot:
    labels = _labels(fields, changes)
    issue_type = _changed(changes, "issuetype") or _name(fields.get("issuetype"))
    priority = jira_priority(_changed(changes, "priority") or _name(fields.get("priority")))
    # Jira always has a priority; a `P1`-style label speaks only where the field says nothing.
    if priority == "none":
        priority = priority_from_labels(labels) or priority
    state = _state(fields)
    assignee = _dict(fields.get("assignee"))
    parent = text_of(_dict(fields.get("parent")).get("key")) or text_of(fields.get(EPIC_LINK))
    return TrackerIssueSnapshot(
        provider="jira",
        external_id=external_id,
        key=key,
        url=url,
        title=text_of(fields.get("summary")),
        state=state,
        state_reason=_name(fields.get("resolution")) if state == "closed" else None,
        kind=kind_of(labels, issue_type),
        priority=priority,
        labels=labels,
        estimate=number_of(fields.get(STORY_POINTS)),
        assignees=[n for n in [text_of(assignee.get("displayName"))] if n],
        fix_versions=_fix_versions(fields.get("fixVersions"), changes.get("fixVersions", [])),
        parent_key=parent,
        created_at=_datetime(fields.get("created")),
        closed_at=_datetime(fields.get("resolutiondate")),
    )


def _changes(payload: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The changelog items by `fieldId`; the display name `field` is localised."""
    items = _dict(payload.get("changelog")).get("items")
    found: dict[str, list[dict[str, Any]]] = {}
    for item in items if isinstance(items, list) else []:
        field_id = text_of(item.get("fieldId")) if isinstance(item, dict) else None
        if field_id is not None:
            found.setdefault(field_id, []).append(item)
    return found


def _changed(changes: dict[str, list[dict[str, Any]]], field_id: str) -> str | None:
    items = changes.get(field_id)
    return text_of(items[-1].get("toString")) if items else None


def _labels(fields: dict[str, Any], changes: dict[str, list[dict[str, Any]]]) -> list[str]:
    if "labels" in changes:
        # The changelog holds the whole new list, space-separated (Jira labels have no spaces).
        return (_changed(changes, "labels") or "").split()
    labels = fields.get("labels")
    return [t for t in labels if isinstance(t, str)] if isinstance(labels, list) else []


def _fix_versions(value: Any, changes: list[dict[str, Any]]) -> list[str]:
    """The versions' names, keyed by version id, with the changelog's removals and additions."""
    versions: dict[str, str] = {}
    for version in value if isinstance(value, list) else []:
        name = text_of(version.get("name")) if isinstance(version, dict) else None
        if name is not None:
            versions[text_of(version.get("id")) or name] = name
    for item in changes:
        # Jira writes one item per version added (`to`) or removed (`from`), or both on a swap.
        removed = text_of(item.get("from"))
        gone = text_of(item.get("fromString"))
        versions = {k: n for k, n in versions.items() if k != removed and (removed or n != gone)}
        added, name = text_of(item.get("to")), text_of(item.get("toString"))
        if name is not None:
            versions.setdefault(added or name, name)
    return list(versions.values())


def _state(fields: dict[str, Any]) -> Literal["open", "closed"] | None:
    category = text_of(_dict(_dict(fields.get("status")).get("statusCategory")).get("key"))
    if category is None:
        return None
    return "closed" if category == "done" else "open"


def _browse_url(api_self: Any, key: str) -> str | None:
    """`https://<site>/browse/<key>`: `self` is the REST address on the same site."""
    host = urlsplit(api_self).netloc if isinstance(api_self, str) else ""
    return f"https://{host}/browse/{key}" if host else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(value: Any) -> str | None:
    return text_of(_dict(value).get("name"))


def _datetime(value: Any) -> datetime | None:
    text = text_of(value)
    return None if text is None else datetime.fromisoformat(text)
