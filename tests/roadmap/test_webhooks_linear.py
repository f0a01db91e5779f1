"""Linear webhooks: hex HMAC signatures, body timestamps, delivery keys, issues as snapshots."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prodops.contract import TrackerCycle
from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError, body_hash
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import TrackerIssueSnapshot, item_keys_from_labels
from roadmap.webhooks.linear import PROVIDER, snapshots

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "linear"
SECRET = "lin_wh_linear-signing-secret-for-tests"
TOLERANCE = 300.0
# The zulip sample's `webhookTimestamp` (1681208213456 ms), as the receiver's clock would read it.
SENT = 1_681_208_213.456
KOR_URL = "https://linear.app/korosuke613/issue/KOR-11/webhook-test"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def _signature(secret: str, body: bytes) -> str:
    # As Linear signs: hex HMAC-SHA256 of the raw body, keyed with the secret Linear issued.
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _webhook(
    body: bytes, signature: str | None = None, delivery: str | None = None
) -> InboundWebhook:
    headers = {"linear-signature": signature or _signature(SECRET, body), "linear-event": "Issue"}
    if delivery is not None:
        headers["linear-delivery"] = delivery
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, *secrets: str, now: float = SENT) -> None:
    PROVIDER.verify(webhook, secrets or (SECRET,), now=now, tolerance=TOLERANCE)


def _only(event_type: str, payload: dict[str, Any]) -> TrackerIssueSnapshot:
    found = snapshots(event_type, payload)
    assert len(found) == 1
    return found[0]


def test_tampered_linear_body_is_rejected() -> None:
    body = (FIXTURES / "zulip.issue_update.json").read_bytes()
    tampered = body.replace(b'"priority": 1', b'"priority": 4')
    with pytest.raises(SignatureError, match="does not match"):
        _verify(_webhook(tampered, _signature(SECRET, body)))


def test_linear_delivery_without_signature_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing linear-signature"):
        _verify(InboundWebhook({"linear-delivery": "d-1"}, b"{}"))


@pytest.mark.parametrize("late", [TOLERANCE + 1, -(TOLERANCE + 1)])
def test_linear_delivery_outside_the_tolerance_is_rejected(late: float) -> None:
    body = (FIXTURES / "zulip.issue_update.json").read_bytes()
    with pytest.raises(SignatureError, match="outside the tolerance"):
        _verify(_webhook(body), now=SENT + late)


def test_linear_delivery_just_inside_the_tolerance_verifies() -> None:
    _verify(_webhook((FIXTURES / "zulip.issue_update.json").read_bytes()), now=SENT + 299)


@pytest.mark.parametrize("sent", ['"1681208213456"', "NaN", "true"])
def test_linear_delivery_with_a_non_numeric_timestamp_is_rejected(sent: str) -> None:
    body = (FIXTURES / "zulip.issue_update.json").read_bytes()
    body = body.replace(b"1681208213456", sent.encode())
    with pytest.raises(SignatureError, match="not a number"):
        _verify(_webhook(body))


def test_older_linear_delivery_without_timestamp_verifies_at_any_time() -> None:
    body = (FIXTURES / "korosuke613.updateIssueCycle.json").read_bytes()
    _verify(_webhook(body), now=SENT + 86_400 * 365)


def test_linear_delivery_is_identified_by_its_delivery_header_and_type_action() -> None:
    body = (FIXTURES / "zulip.issue_update.json").read_bytes()
    identity = PROVIDER.identify(_webhook(body, delivery="234d1a4e-b617-4388-90fe-adc3633d6b72"))
    assert identity == Identity("234d1a4e-b617-4388-90fe-adc3633d6b72", "Issue.update")


def test_linear_delivery_without_delivery_header_is_keyed_by_its_body() -> None:
    webhook = _webhook((FIXTURES / "korosuke613.updateIssueEstimated.json").read_bytes())
    assert PROVIDER.identify(webhook) == Identity(body_hash(webhook), "Issue.update")


def test_updated_linear_issue_is_a_complete_snapshot_of_its_data() -> None:
    issue = _only("Issue.update", _fixture("zulip.issue_update"))
    assert issue.model_dump(exclude={"title"}) == TrackerIssueSnapshot(
        provider="linear",
        external_id="3443a709-f2b5-46f2-a136-a0445fd432be",
        key="WEB-44",
        url="https://linear.app/webhooks/issue/WEB-44/this-is-regarding-the-outage-that-we-faced-on-111222-from-2000-to-2200",
        state="open",
        kind="bug",
        priority="urgent",
        labels=["Improvement", "Feature", "Bug", "Custom Label"],
        assignees=["Satyam Bansal"],
        created_at=datetime(2023, 4, 11, 10, 10, 15, 37000, tzinfo=UTC),
        cycle=TrackerCycle(id="eaef2755-de5b-4342-accb-79060378493f", number=1),
        cleared=frozenset({"project"}),  # Linear leaves the null project out
    ).model_dump(exclude={"title"})
    assert issue.title is not None
    assert issue.title.startswith("This is regarding the outage that we faced on 11/12/22")


def test_linear_issue_moved_to_a_cycle_has_no_labels_and_no_priority() -> None:
    issue = _only("Issue.update", _fixture("korosuke613.updateIssueCycle"))
    assert (issue.key, issue.url, issue.title) == ("KOR-11", KOR_URL, "webhook test")
    assert (issue.state, issue.priority, issue.kind) == ("open", "none", "task")
    assert (issue.labels, issue.estimate, issue.project) == ([], None, None)
    assert issue.assignees == ["user@example.com"]


def test_estimated_linear_issue_carries_its_estimate_and_label() -> None:
    issue = _only("Issue.update", _fixture("korosuke613.updateIssueEstimated"))
    assert (issue.key, issue.estimate, issue.labels, issue.kind) == (
        "KOR-11",
        1.0,
        ["FUTA"],
        "task",
    )


def test_created_linear_issue_names_its_project_and_roadmap_item() -> None:
    payload = _fixture("korosuke613.updateIssueEstimated")
    payload["action"] = "create"
    payload["data"]["identifier"] = "KOR-11"
    payload["data"]["project"] = {"id": "p-1", "name": "LAUNCH-2024-Q3"}
    payload["data"]["labels"].append({"id": "l-2", "name": "roadmap:chk-12"})
    issue = _only("Issue.create", payload)
    assert (issue.key, issue.project) == ("KOR-11", "LAUNCH-2024-Q3")
    assert item_keys_from_labels(issue.labels or []) == ["CHK-12"]


def test_completed_linear_issue_is_closed_when_it_was_completed() -> None:
    payload = _fixture("zulip.issue_update")
    payload["data"]["state"]["type"] = "completed"
    payload["data"]["completedAt"] = "2023-04-12T08:00:00.000Z"
    issue = _only("Issue.update", payload)
    assert (issue.state, issue.state_reason) == ("closed", "completed")
    assert issue.closed_at == datetime(2023, 4, 12, 8, tzinfo=UTC)


def test_canceled_linear_issue_is_closed_as_canceled() -> None:
    payload = _fixture("korosuke613.updateIssueCycle")
    payload["data"]["state"]["type"] = "canceled"
    issue = _only("Issue.update", payload)
    assert (issue.state, issue.state_reason) == ("closed", "canceled")


def test_linear_issue_with_label_ids_only_leaves_labels_and_kind_unknown() -> None:
    payload = _fixture("korosuke613.updateIssueEstimated")
    del payload["data"]["labels"]
    payload["data"]["projectId"] = "a-project-without-its-name"
    issue = _only("Issue.update", payload)
    assert (issue.labels, issue.kind, issue.project) == (None, None, None)


def test_linear_issue_without_priority_takes_a_priority_label() -> None:
    payload = _fixture("korosuke613.updateIssueEstimated")
    payload["data"]["labels"].append({"id": "l-3", "name": "P1"})
    assert _only("Issue.update", payload).priority == "high"


def test_unassigned_linear_issue_has_no_assignees() -> None:
    payload = _fixture("korosuke613.updateIssueCycle")
    del payload["data"]["assignee"], payload["data"]["assigneeId"]
    assert _only("Issue.update", payload).assignees == []


def test_removed_linear_issue_is_marked_deleted() -> None:
    payload = _fixture("korosuke613.updateIssueCycle")
    payload["action"] = "remove"
    assert _only("Issue.remove", payload) == TrackerIssueSnapshot(
        provider="linear",
        external_id=payload["data"]["id"],
        key="KOR-11",
        url=KOR_URL,
        deleted=True,
    )


@pytest.mark.parametrize("event_type", ["Comment.create", "Project.update", "Reaction.create"])
def test_linear_events_other_than_issue_changes_are_ignored(event_type: str) -> None:
    assert snapshots(event_type, _fixture("zulip.issue_update")) == []


@pytest.mark.parametrize("payload", [[], {"type": "Issue"}, {"data": {"title": "no id"}}])
def test_linear_issue_event_without_an_issue_is_malformed(payload: Any) -> None:
    with pytest.raises(MalformedWebhookError):
        snapshots("Issue.update", payload)
