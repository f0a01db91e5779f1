"""Jira Cloud webhooks: `sha256=` HMAC signatures, webhook identifiers, issues as snapshots."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError, body_hash
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import TrackerIssueSnapshot, item_keys_from_labels
from roadmap.webhooks.jira import PROVIDER, snapshots

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "jira"
SECRET = "jira-admin-webhook-secret"
NOW = 1_700_000_000.0
PACIFIC = timezone(timedelta(hours=-8))
TES_URL = "https://some-instance-test.atlassian.net/browse/TES-41"


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def _signature(secret: str, body: bytes) -> str:
    # As Jira signs: `sha256=` + hex HMAC-SHA256 of the raw body, keyed with the secret as typed.
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _webhook(
    body: bytes, signature: str | None = None, delivery: str | None = None
) -> InboundWebhook:
    headers = {"x-hub-signature": signature or _signature(SECRET, body)}
    if delivery is not None:
        headers["x-atlassian-webhook-identifier"] = delivery
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, *secrets: str) -> None:
    PROVIDER.verify(webhook, secrets or (SECRET,), now=NOW, tolerance=300)


def _only(event_type: str, payload: dict[str, Any]) -> TrackerIssueSnapshot:
    found = snapshots(event_type, payload)
    assert len(found) == 1
    return found[0]


def test_tampered_jira_body_is_rejected() -> None:
    body = (FIXTURES / "webhook-issue-created.json").read_bytes()
    tampered = body.replace(b"Unit test summary", b"Unit test summarY")
    with pytest.raises(SignatureError, match="does not match"):
        _verify(_webhook(tampered, _signature(SECRET, body)))


def test_jira_delivery_without_signature_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing x-hub-signature"):
        _verify(InboundWebhook({}, b"{}"))


def test_jira_signature_of_another_method_is_rejected() -> None:
    body = b"{}"
    sha1 = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match="not sha256="):
        _verify(_webhook(body, sha1))


def test_jira_delivery_is_identified_by_its_webhook_identifier_and_event() -> None:
    body = (FIXTURES / "webhook-issue-updated-labels.json").read_bytes()
    identity = PROVIDER.identify(_webhook(body, delivery="87d2c3f4-1"))
    assert identity == Identity("87d2c3f4-1", "jira:issue_updated")


def test_jira_delivery_without_identifier_is_keyed_by_its_body() -> None:
    webhook = _webhook((FIXTURES / "webhook-cloud-comment-updated.json").read_bytes())
    assert PROVIDER.identify(webhook) == Identity(body_hash(webhook), "comment_updated")


def test_created_jira_issue_becomes_an_open_snapshot() -> None:
    issue = _only("jira:issue_created", _fixture("webhook-issue-created"))
    assert issue == TrackerIssueSnapshot(
        provider="jira",
        external_id="10040",
        key="TES-41",
        url=TES_URL,
        title="Unit test summary",
        state="open",
        kind="feature",
        priority="high",
        labels=["test-label"],
        estimate=None,
        assignees=[],
        fix_versions=[],
        parent_key=None,
        created_at=datetime(2019, 2, 15, 19, 1, 52, 971000, tzinfo=PACIFIC),
    )


def test_created_jira_issue_with_many_fields_keeps_versions_epic_and_assignee() -> None:
    issue = _only("jira:issue_created", _fixture("webhook-cloud-issue-created-many-fields"))
    assert (issue.key, issue.url) == ("KT-22", "https://mmtest.atlassian.net/browse/KT-22")
    assert (issue.state, issue.kind, issue.priority) == ("open", "task", "medium")
    assert issue.labels == ["Label1", "Label2"]
    # The creation changelog's "d" is ignored: on creation the fields are the issue.
    assert issue.fix_versions == ["version1", "version2"]
    assert issue.parent_key == "KT-17"  # the classic Epic Link field
    assert issue.assignees == ["Sample User"]
    assert issue.estimate is None


def test_jira_story_points_and_parent_become_estimate_and_parent_key() -> None:
    payload = _fixture("webhook-cloud-issue-created-many-fields")
    payload["issue"]["fields"]["customfield_10016"] = 5
    payload["issue"]["fields"]["parent"] = {"id": "10500", "key": "KT-3"}
    issue = _only("jira:issue_created", payload)
    assert (issue.estimate, issue.parent_key) == (5.0, "KT-3")


def test_roadmap_label_on_a_jira_issue_names_the_item() -> None:
    payload = _fixture("webhook-issue-created")
    payload["issue"]["fields"]["labels"].append("roadmap:chk-7")
    assert item_keys_from_labels(_only("jira:issue_created", payload).labels or []) == ["CHK-7"]


def test_fix_version_change_comes_from_the_changelog_when_fields_lag() -> None:
    # Known quirk: this sample's `fixVersions` is empty though its changelog records v1 -> v2.
    payload = _fixture("webhook-issue-updated-fix-version")
    assert payload["issue"]["fields"]["fixVersions"] == []
    issue = _only("jira:issue_updated", payload)
    assert (issue.key, issue.state, issue.fix_versions) == ("TES-41", "open", ["v2"])


def test_fix_version_change_agreeing_with_the_fields_changes_nothing() -> None:
    payload = _fixture("webhook-issue-updated-fix-version")
    payload["issue"]["fields"]["fixVersions"] = [{"id": "10001", "name": "v2"}]
    assert _only("jira:issue_updated", payload).fix_versions == ["v2"]


def test_removed_fix_version_is_dropped_by_its_id() -> None:
    payload = _fixture("webhook-issue-updated-fix-version")
    payload["issue"]["fields"]["fixVersions"] = [{"id": "10000", "name": "v1"}]
    payload["changelog"]["items"][0].update(to=None, toString=None)
    assert _only("jira:issue_updated", payload).fix_versions == []


def test_relabelled_jira_issue_takes_the_changelog_labels() -> None:
    issue = _only("jira:issue_updated", _fixture("webhook-issue-updated-labels"))
    assert issue.labels == ["sad", "test-label"]
    assert (issue.kind, issue.priority) == ("feature", "high")


def test_retyped_jira_issue_takes_the_changelog_issue_type() -> None:
    # The sample's fields still say Story while its changelog records Task -> Bug.
    issue = _only("jira:issue_updated", _fixture("webhook-issue-updated-issue-type"))
    assert issue.kind == "bug"


def test_raised_jira_priority_is_high() -> None:
    issue = _only("jira:issue_updated", _fixture("webhook-issue-updated-raised-priority"))
    assert (issue.priority, issue.labels) == ("high", ["sad", "test-label"])


def test_resolved_jira_issue_is_closed_with_its_resolution() -> None:
    issue = _only("jira:issue_updated", _fixture("webhook-issue-updated-resolved"))
    assert (issue.state, issue.state_reason) == ("closed", "Done")
    assert issue.closed_at == datetime(2019, 2, 15, 19, 15, 40, 470000, tzinfo=PACIFIC)


def test_reopened_jira_issue_is_open_again() -> None:
    issue = _only("jira:issue_updated", _fixture("webhook-issue-updated-reopened"))
    assert (issue.state, issue.state_reason, issue.closed_at) == ("open", None, None)


def test_jira_issue_without_priority_takes_a_priority_label() -> None:
    payload = _fixture("webhook-issue-created")
    payload["issue"]["fields"]["priority"] = None
    payload["issue"]["fields"]["labels"] = ["P0"]
    assert _only("jira:issue_created", payload).priority == "urgent"


def test_deleted_jira_issue_is_marked_deleted() -> None:
    issue = _only("jira:issue_deleted", _fixture("webhook-issue-deleted"))
    assert issue == TrackerIssueSnapshot(
        provider="jira",
        external_id="10303",
        key="IDT-19",
        url="https://some-instance-test.atlassian.net/browse/IDT-19",
        deleted=True,
    )


@pytest.mark.parametrize(
    "event_type", ["comment_updated", "jira:worklog_updated", "sprint_started"]
)
def test_jira_events_other_than_issue_changes_are_ignored(event_type: str) -> None:
    assert snapshots(event_type, _fixture("webhook-cloud-comment-updated")) == []


@pytest.mark.parametrize("payload", [[], {"webhookEvent": "jira:issue_created"}, {"issue": {}}])
def test_jira_issue_event_without_an_issue_is_malformed(payload: Any) -> None:
    with pytest.raises(MalformedWebhookError):
        snapshots("jira:issue_created", payload)
