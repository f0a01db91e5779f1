"""GitLab webhooks: secret token or Standard Webhooks signature, dedup keys, issues and MRs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError, body_hash
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import TrackerIssueSnapshot, item_keys_from_labels
from roadmap.webhooks.gitlab import PROVIDER, parse_time, snapshots

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "gitlab"
TOKEN = "gl-token-for-tests-0123456789"
# GitLab's signing tokens are `whsec_` + base64 of a 32-byte key.
SIGNING = "whsec_" + base64.b64encode(b"gitlab-signing-key-for-the-tests").decode()
NOW = 1_700_000_000
MESSAGE = "9c1b8a3e-5f0d-4a57-bd3c-0f5e8d1c2a77"


def _standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    # As GitLab signs: `v1,` + base64 HMAC-SHA256 of "id.timestamp.body", keyed with the
    # base64-decoded part of the `whsec_` token.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def _payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(_body(name))
    return payload


def _token_webhook(body: bytes, token: str = TOKEN, **headers: str) -> InboundWebhook:
    return InboundWebhook(
        {"x-gitlab-token": token, "x-gitlab-event": "Issue Hook", **headers}, body
    )


def _signed_webhook(body: bytes, secret: str = SIGNING, sent_at: int = NOW) -> InboundWebhook:
    headers = {
        "x-gitlab-event": "Issue Hook",
        "idempotency-key": MESSAGE,
        "webhook-id": MESSAGE,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": _standard_signature(secret, MESSAGE, sent_at, body),
    }
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, secrets: list[str]) -> None:
    PROVIDER.verify(webhook, secrets, now=float(NOW), tolerance=300)


def _one(event_type: str, payload: dict[str, Any]) -> TrackerIssueSnapshot:
    [snapshot] = snapshots(event_type, payload)
    return snapshot


def _repaired(value: Any) -> Any:
    # go-gitlab's group MR sample has keys and values with trailing spaces ("state ": "merged ").
    if isinstance(value, dict):
        return {key.strip(): _repaired(item) for key, item in value.items()}
    return value.strip() if isinstance(value, str) else value


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_gitlab_provider_is_named_gitlab() -> None:
    assert PROVIDER.name == "gitlab"


@pytest.mark.parametrize("token", ["", "ünïcödé"])
def test_gitlab_empty_or_garbled_token_is_refused_without_crashing(token: str) -> None:
    with pytest.raises(SignatureError):
        _verify(_token_webhook(_body("issue"), token=token), [TOKEN, ""])


def test_gitlab_delivery_without_token_or_signature_is_refused() -> None:
    webhook = InboundWebhook({"x-gitlab-event": "Issue Hook"}, _body("issue"))
    with pytest.raises(SignatureError, match="missing"):
        _verify(webhook, [TOKEN])


def test_gitlab_signed_delivery_with_a_tampered_body_is_refused() -> None:
    body = _body("issue")
    tampered = InboundWebhook(_signed_webhook(body).headers, body.replace(b"opened", b"closed"))
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        _verify(tampered, [SIGNING])


def test_gitlab_signed_delivery_with_a_stale_timestamp_is_refused() -> None:
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(_signed_webhook(_body("issue"), sent_at=NOW - 301), [SIGNING])


def test_gitlab_delivery_missing_one_signature_header_is_refused() -> None:
    webhook = _signed_webhook(_body("issue"))
    headers = {k: v for k, v in webhook.headers.items() if k != "webhook-timestamp"}
    with pytest.raises(SignatureError, match="missing"):
        _verify(InboundWebhook(headers, webhook.body), [SIGNING])


def test_gitlab_signature_verifies_even_beside_a_stale_secret_token() -> None:
    webhook = _signed_webhook(_body("issue"))
    headers = {**webhook.headers, "x-gitlab-token": "an-old-token"}
    _verify(InboundWebhook(headers, webhook.body), [SIGNING])


def test_gitlab_delivery_is_keyed_by_idempotency_key_first() -> None:
    webhook = _token_webhook(
        _body("issue"), **{"idempotency-key": "idem-1", "x-gitlab-event-uuid": "uuid-1"}
    )
    assert PROVIDER.identify(webhook) == Identity("idem-1", "Issue Hook.open")


def test_gitlab_delivery_before_17_4_is_keyed_by_event_uuid() -> None:
    webhook = _token_webhook(_body("issue"), **{"x-gitlab-event-uuid": "uuid-1"})
    assert PROVIDER.identify(webhook).delivery_key == "uuid-1"


def test_gitlab_delivery_without_ids_is_keyed_by_its_body_hash() -> None:
    webhook = _token_webhook(_body("issue"), **{"x-gitlab-webhook-uuid": "the-hook-itself"})
    assert PROVIDER.identify(webhook).delivery_key == body_hash(webhook)


@pytest.mark.parametrize(
    ("name", "hook", "event_type"),
    [
        ("merge_request", "Merge Request Hook", "Merge Request Hook.open"),
        ("note_issue", "Note Hook", "Note Hook.create"),
        ("release", "Release Hook", "Release Hook"),
    ],
)
def test_gitlab_event_type_is_the_hook_and_its_action(
    name: str, hook: str, event_type: str
) -> None:
    webhook = _token_webhook(_body(name), **{"x-gitlab-event": hook})
    assert PROVIDER.identify(webhook).event_type == event_type


def test_gitlab_delivery_without_an_event_header_is_malformed() -> None:
    webhook = InboundWebhook({"x-gitlab-token": TOKEN}, _body("issue"))
    with pytest.raises(MalformedWebhookError, match="x-gitlab-event"):
        PROVIDER.identify(webhook)


def test_opened_gitlab_issue_maps_to_its_whole_snapshot() -> None:
    assert _one("Issue Hook.open", _payload("issue")) == TrackerIssueSnapshot(
        provider="gitlab",
        external_id="301",
        key="gitlabhq/gitlab-test#23",
        url="http://example.com/diaspora/issues/23",
        title="New API: create/update/delete file",
        state="open",
        state_reason=None,
        kind="task",
        priority="high",  # from its severity
        labels=["API"],
        assignees=["user1"],
        milestone=None,
        is_pull_request=False,
        merged=None,
        created_at=_at("2013-12-03T17:15:43"),
        closed_at=None,
        deleted=False,
        cleared=frozenset({"milestone"}),  # its `milestone_id` is null
    )


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        ("critical", "urgent"),
        ("high", "high"),
        ("medium", "medium"),
        ("low", "low"),
        ("unknown", "none"),
        (None, "none"),
    ],
)
def test_gitlab_severity_sets_the_priority_when_no_label_does(
    severity: str | None, priority: str
) -> None:
    payload = _payload("issue")
    payload["object_attributes"]["severity"] = severity
    assert _one("Issue Hook.update", payload).priority == priority


def test_gitlab_issue_labelled_for_an_item_and_as_p1_blocker_links_and_ranks() -> None:
    payload = _payload("issue")
    titles = ["roadmap:CK-1", "P1", "blocker", "bug"]
    payload["object_attributes"]["labels"] += [{"title": title} for title in titles]
    payload["object_attributes"]["severity"] = "low"
    snapshot = _one("Issue Hook.update", payload)
    assert snapshot.labels == ["API", "roadmap:CK-1", "P1", "blocker", "bug"]
    assert item_keys_from_labels(snapshot.labels) == ["CK-1"]
    assert (snapshot.priority, snapshot.kind) == ("high", "bug")


def test_gitlab_issue_labels_come_from_the_top_level_when_attributes_lack_them() -> None:
    payload = _payload("issue")
    del payload["object_attributes"]["labels"]
    payload["labels"] = [{"title": "feature"}]
    assert _one("Issue Hook.update", payload).labels == ["feature"]


def test_gitlab_incident_is_a_bug() -> None:
    payload = _payload("issue")
    payload["object_attributes"]["issue_type"] = "incident"
    assert _one("Issue Hook.update", payload).kind == "bug"


def test_closed_gitlab_issue_is_closed_at_its_utc_time() -> None:
    payload = _payload("issue")
    attributes = payload["object_attributes"]
    attributes.update(state="closed", action="close", closed_at="2017-09-15 16:56:00 UTC")
    snapshot = _one("Issue Hook.close", payload)
    assert (snapshot.state, snapshot.closed_at) == ("closed", _at("2017-09-15T16:56:00"))


def test_reopened_gitlab_issue_is_open() -> None:
    payload = _payload("issue")
    payload["object_attributes"].update(state="reopened", action="reopen")
    assert _one("Issue Hook.reopen", payload).state == "open"


def test_moved_gitlab_issue_is_closed_as_moved() -> None:
    payload = _payload("issue")
    payload["object_attributes"].update(state="closed", action="close", moved_to_id=302)
    snapshot = _one("Issue Hook.close", payload)
    assert (snapshot.state, snapshot.state_reason, snapshot.deleted) == ("closed", "moved", False)


def test_gitlab_issue_milestone_is_named_only_when_the_payload_carries_its_title() -> None:
    payload = _payload("issue")
    payload["object_attributes"].update(milestone_id=7)
    snapshot = _one("Issue Hook.update", payload)
    assert (snapshot.milestone, snapshot.cleared) == (None, frozenset())
    payload["object_attributes"]["milestone"] = {"id": 7, "title": "LAUNCH-3"}
    assert _one("Issue Hook.update", payload).milestone == "LAUNCH-3"


def test_confidential_gitlab_issue_maps_like_any_issue() -> None:
    assert _one("Confidential Issue Hook.open", _payload("issue")).key == "gitlabhq/gitlab-test#23"


def test_opened_gitlab_merge_request_maps_to_a_pull_request_snapshot() -> None:
    snapshot = _one("Merge Request Hook.open", _payload("merge_request"))
    assert snapshot.is_pull_request is True
    assert (snapshot.external_id, snapshot.key) == ("mr:99", "gitlabhq/gitlab-test!1")
    assert (snapshot.state, snapshot.merged, snapshot.closed_at) == ("open", False, None)
    assert (snapshot.title, snapshot.url) == (
        "MS-Viewport",
        "http://example.com/diaspora/merge_requests/1",
    )
    assert (snapshot.labels, snapshot.kind, snapshot.priority) == (["API"], "task", "none")
    assert snapshot.assignees == ["user1"]
    assert snapshot.created_at == _at("2013-12-03T17:23:34")


def test_merged_gitlab_merge_request_is_closed_and_merged() -> None:
    payload = _payload("merge_request")
    payload["object_attributes"].update(
        state="merged", action="merge", merged_at="2013-12-04 09:00:00 UTC"
    )
    snapshot = _one("Merge Request Hook.merge", payload)
    assert (snapshot.state, snapshot.merged) == ("closed", True)
    assert snapshot.closed_at == _at("2013-12-04T09:00:00")


def test_closed_gitlab_merge_request_is_closed_unmerged() -> None:
    payload = _payload("merge_request")
    payload["object_attributes"].update(state="closed", action="close")
    snapshot = _one("Merge Request Hook.close", payload)
    assert (snapshot.state, snapshot.merged) == ("closed", False)


def test_gitlab_merge_request_being_merged_is_still_open() -> None:
    payload = _payload("merge_request")
    payload["object_attributes"]["state"] = "locked"
    snapshot = _one("Merge Request Hook.update", payload)
    assert (snapshot.state, snapshot.merged) == ("open", False)


def test_gitlab_group_merge_request_sample_as_published_fails_for_want_of_an_iid() -> None:
    with pytest.raises(ValueError, match="no id or iid"):
        snapshots("Merge Request Hook.merge", _payload("group_merge_request"))


def test_gitlab_group_merge_request_sample_once_repaired_is_merged() -> None:
    snapshot = _one("Merge Request Hook.merge", _repaired(_payload("group_merge_request")))
    assert (snapshot.key, snapshot.external_id) == (
        "exm-namespace/example-project!1402",
        "mr:15917",
    )
    assert (snapshot.state, snapshot.merged, snapshot.title) == (
        "closed",
        True,
        "source-branch-test",
    )
    assert snapshot.assignees == ["user1"]
    assert (snapshot.labels, snapshot.created_at) == ([], _at("2016-12-01T13:11:10"))


def test_gitlab_merge_request_without_a_state_takes_it_from_its_action() -> None:
    payload = _payload("merge_request")
    del payload["object_attributes"]["state"]
    payload["object_attributes"]["action"] = "merge"
    assert _one("Merge Request Hook.merge", payload).merged is True


@pytest.mark.parametrize(
    ("name", "event_type"), [("note_issue", "Note Hook.create"), ("release", "Release Hook")]
)
def test_gitlab_notes_and_releases_are_ignored(name: str, event_type: str) -> None:
    assert snapshots(event_type, _payload(name)) == []


def test_gitlab_payload_that_is_not_an_object_fails() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        snapshots("Issue Hook.open", ["not", "an", "issue"])


def test_gitlab_issue_in_an_unknown_state_fails() -> None:
    payload = _payload("issue")
    payload["object_attributes"].update(state="archived", action="archive")
    with pytest.raises(ValueError, match="unknown state"):
        snapshots("Issue Hook.archive", payload)


@pytest.mark.parametrize(
    "text",
    ["2013-12-03T17:23:34Z", "2013-12-03 17:23:34 UTC", "2013-12-03T19:23:34+02:00"],
)
def test_gitlab_times_in_every_published_format_parse_to_the_same_instant(text: str) -> None:
    assert parse_time(text) == _at("2013-12-03T17:23:34")
