"""GitHub webhooks: HMAC-SHA256 signatures, delivery keys, ping, issues and pull requests."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import JSONResponse

from prodops.webhooks.provider import Identity, InboundWebhook, MalformedWebhookError
from prodops.webhooks.standard import SignatureError
from roadmap.tracker_snapshot import TrackerIssueSnapshot, item_keys_from_labels
from roadmap.webhooks.github import PROVIDER, snapshots

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "github"
SECRET = "gh-secret-for-tests-0123456789"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
NOW = 1_700_000_000.0


def _signature(secret: str, body: bytes) -> str:
    # As GitHub signs: `sha256=` + hex HMAC-SHA256 of the raw body, keyed with the secret as typed.
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _body(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def _payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(_body(name))
    return payload


def _webhook(body: bytes, event: str = "issues", secret: str = SECRET) -> InboundWebhook:
    headers = {
        "x-hub-signature-256": _signature(secret, body),
        "x-github-delivery": DELIVERY,
        "x-github-event": event,
    }
    return InboundWebhook(headers, body)


def _verify(webhook: InboundWebhook, secrets: list[str]) -> None:
    PROVIDER.verify(webhook, secrets, now=NOW, tolerance=300)


def _one(event_type: str, payload: dict[str, Any]) -> TrackerIssueSnapshot:
    [snapshot] = snapshots(event_type, payload)
    return snapshot


def _as_plain_issue(payload: dict[str, Any]) -> dict[str, Any]:
    # octokit's (de)milestoned samples are about a pull request; make it the plain issue #2.
    del payload["issue"]["pull_request"]
    return payload


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_github_provider_is_named_github() -> None:
    assert PROVIDER.name == "github"


def test_github_delivery_with_a_tampered_body_is_refused() -> None:
    body = _body("issues.opened")
    tampered = InboundWebhook(_webhook(body).headers, body.replace(b'"open"', b'"closed"'))
    with pytest.raises(SignatureError, match="does not match"):
        _verify(tampered, [SECRET])


def test_github_delivery_without_a_signature_is_refused() -> None:
    webhook = _webhook(_body("issues.opened"))
    headers = {k: v for k, v in webhook.headers.items() if k != "x-hub-signature-256"}
    with pytest.raises(SignatureError, match="missing x-hub-signature-256"):
        _verify(InboundWebhook(headers, webhook.body), [SECRET])


@pytest.mark.parametrize("scheme", ["sha1=", "", "SHA256="])
def test_github_signature_in_another_scheme_is_refused(scheme: str) -> None:
    body = _body("issues.opened")
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {**_webhook(body).headers, "x-hub-signature-256": scheme + digest}
    with pytest.raises(SignatureError):
        _verify(InboundWebhook(headers, body), [SECRET])


def test_github_signature_with_non_ascii_garbage_is_refused_without_crashing() -> None:
    body = _body("issues.opened")
    headers = {**_webhook(body).headers, "x-hub-signature-256": "sha256=ünïcödé"}
    with pytest.raises(SignatureError):
        _verify(InboundWebhook(headers, body), [SECRET])


def test_github_delivery_signed_with_an_empty_key_never_verifies() -> None:
    with pytest.raises(SignatureError):
        _verify(_webhook(_body("issues.opened"), secret=""), [""])


def test_github_delivery_is_keyed_by_delivery_id_and_typed_by_event_and_action() -> None:
    assert PROVIDER.identify(_webhook(_body("issues.labeled"))) == Identity(
        DELIVERY, "issues.labeled"
    )
    pull = _webhook(_body("pull_request.closed"), event="pull_request")
    assert PROVIDER.identify(pull) == Identity(DELIVERY, "pull_request.closed")


def test_github_event_without_an_action_is_typed_by_the_event_alone() -> None:
    assert PROVIDER.identify(_webhook(_body("ping"), event="ping")) == Identity(DELIVERY, "ping")


@pytest.mark.parametrize("header", ["x-github-delivery", "x-github-event"])
def test_github_delivery_without_its_id_or_event_is_malformed(header: str) -> None:
    webhook = _webhook(_body("issues.opened"))
    headers = {k: v for k, v in webhook.headers.items() if k != header}
    with pytest.raises(MalformedWebhookError, match=header):
        PROVIDER.identify(InboundWebhook(headers, webhook.body))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"payload=%7B%7D", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'"issues"', "not a JSON object"),
        (b"null", "not a JSON object"),
        # The identity reads only `action`; the rest must still be JSON, and UTF-8.
        (b'{"action": "opened", "issue": {"title": "cut', "not JSON"),
        (b'{"action": "opened", "issue": {"title": "\xff\xfe"}}', "not JSON"),
        (b'{"action": "opened"} trailing', "not JSON"),
        (b'\xef\xbb\xbf{"action": "opened"}', "not JSON"),
    ],
)
def test_github_body_that_is_not_a_json_object_is_malformed(body: bytes, why: str) -> None:
    with pytest.raises(MalformedWebhookError, match=why):
        PROVIDER.identify(_webhook(body))


def test_github_action_of_another_type_types_the_delivery_by_its_event() -> None:
    body = b'{"issue": {"number": 1}, "action": ["opened"]}'
    assert PROVIDER.identify(_webhook(body)) == Identity(DELIVERY, "issues")


def test_github_ping_is_answered_pong() -> None:
    answer = PROVIDER.handshake(_webhook(_body("ping"), event="ping"))
    assert isinstance(answer, JSONResponse)
    assert json.loads(bytes(answer.body)) == {"status": "pong"}


def test_opened_github_issue_maps_to_its_whole_snapshot() -> None:
    assert _one("issues.opened", _payload("issues.opened")) == TrackerIssueSnapshot(
        provider="github",
        external_id="444500041",
        key="Codertocat/Hello-World#1",
        url="https://github.com/Codertocat/Hello-World/issues/1",
        title="Spelling error in the README file",
        state="open",
        state_reason=None,
        kind="bug",
        priority="none",
        labels=["bug"],
        assignees=["Codertocat"],
        milestone="v1.0",
        is_pull_request=False,
        merged=None,
        created_at=_at("2019-05-15T15:20:18"),
        closed_at=None,
        deleted=False,
    )


def test_closed_github_issue_from_a_real_delivery_is_closed_as_completed() -> None:
    snapshot = _one("issues.closed", _payload("issues.closed"))
    assert snapshot.key == "codinasion/codinasion-bot#2"
    assert snapshot.external_id == "1299020697"
    assert (snapshot.state, snapshot.state_reason) == ("closed", "completed")
    assert snapshot.closed_at == _at("2022-07-08T13:54:56")
    assert snapshot.labels == ["triage", "team"]
    assert (snapshot.kind, snapshot.priority, snapshot.milestone) == ("task", "none", None)
    assert snapshot.assignees == []


def test_reopened_github_issue_is_open_without_its_old_close_time() -> None:
    snapshot = _one("issues.reopened", _payload("issues.reopened"))
    assert (snapshot.state, snapshot.closed_at, snapshot.deleted) == ("open", None, False)
    assert snapshot.key == "Codertocat/Hello-World#1"


def test_edited_github_issue_carries_its_current_title_and_labels() -> None:
    snapshot = _one("issues.edited", _payload("issues.edited"))
    assert snapshot.title == "Spelling error in the README file"
    assert (snapshot.labels, snapshot.kind, snapshot.milestone) == (["bug"], "bug", "v1.0")


def test_assigned_github_issue_lists_its_assignees() -> None:
    assert _one("issues.assigned", _payload("issues.assigned")).assignees == ["Codertocat"]


def test_github_issue_labelled_for_an_item_and_as_p1_blocker_links_and_ranks() -> None:
    payload = _payload("issues.labeled")
    names = ["roadmap:ck-1", "P1", "blocker"]
    payload["issue"]["labels"] += [{"name": name} for name in names]
    snapshot = _one("issues.labeled", payload)
    assert snapshot.labels == ["bug", "roadmap:ck-1", "P1", "blocker"]
    assert item_keys_from_labels(snapshot.labels) == ["CK-1"]
    assert (snapshot.priority, snapshot.kind) == ("high", "bug")


def test_github_label_named_by_the_labeled_event_is_included() -> None:
    payload = _payload("issues.labeled")
    payload["label"] = {"name": "priority:urgent"}
    snapshot = _one("issues.labeled", payload)
    assert snapshot.labels == ["bug", "priority:urgent"]
    assert snapshot.priority == "urgent"


def test_unlabeled_github_issue_drops_the_removed_label() -> None:
    # octokit's sample still lists `bug` on the issue after `bug` was removed.
    snapshot = _one("issues.unlabeled", _payload("issues.unlabeled"))
    assert (snapshot.labels, snapshot.kind) == ([], "task")


def test_milestoned_github_issue_names_the_milestone() -> None:
    payload = _as_plain_issue(_payload("issues.milestoned"))
    snapshot = _one("issues.milestoned", payload)
    assert (snapshot.key, snapshot.milestone) == ("Codertocat/Hello-World#2", "v1.0")
    assert snapshot.external_id == "444500167"


def test_demilestoned_github_issue_has_no_milestone() -> None:
    payload = _as_plain_issue(_payload("issues.demilestoned"))
    assert _one("issues.demilestoned", payload).milestone is None


@pytest.mark.parametrize("name", ["issues.milestoned", "issues.demilestoned"])
def test_issues_event_about_a_pull_request_is_ignored(name: str) -> None:
    # The pull request's own `pull_request.*` events describe it, under its own id.
    assert snapshots(name, _payload(name)) == []


def test_github_issue_type_decides_the_kind_over_labels() -> None:
    payload = _payload("issues.opened")
    payload["issue"]["type"] = {"id": 1, "name": "Feature"}
    assert _one("issues.opened", payload).kind == "feature"


def test_deleted_github_issue_is_marked_deleted() -> None:
    snapshot = _one("issues.deleted", _payload("issues.deleted"))
    assert (snapshot.deleted, snapshot.key, snapshot.external_id) == (
        True,
        "Codertocat/Hello-World#1",
        "444500041",
    )
    assert snapshot.state == "closed"


def test_transferred_github_issue_has_left_the_repository() -> None:
    snapshot = _one("issues.transferred", _payload("issues.transferred"))
    assert (snapshot.deleted, snapshot.key, snapshot.external_id) == (
        True,
        "octo-org/octo-repo#1",
        "512748900",
    )
    assert (snapshot.labels, snapshot.milestone, snapshot.is_pull_request) == ([], None, False)


def test_opened_github_pull_request_maps_to_a_pull_request_snapshot() -> None:
    snapshot = _one("pull_request.opened", _payload("pull_request.opened"))
    assert snapshot.is_pull_request is True
    assert (snapshot.external_id, snapshot.key) == ("pr:279147437", "Codertocat/Hello-World#2")
    assert snapshot.url == "https://github.com/Codertocat/Hello-World/pull/2"
    assert (snapshot.state, snapshot.merged) == ("open", False)
    assert (snapshot.labels, snapshot.kind, snapshot.assignees) == (["bug"], "bug", ["Codertocat"])
    assert snapshot.created_at == _at("2019-05-15T15:20:33")


def test_github_pull_request_without_labels_is_a_task() -> None:
    payload = _payload("pull_request.opened")
    payload["pull_request"]["labels"] = []
    assert _one("pull_request.opened", payload).kind == "task"


def test_github_pull_request_closed_without_merging_is_closed_unmerged() -> None:
    snapshot = _one("pull_request.closed", _payload("pull_request.closed"))
    assert (snapshot.state, snapshot.merged) == ("closed", False)
    assert snapshot.closed_at == _at("2019-05-15T15:21:18")


def test_merged_github_pull_request_arrives_closed_and_merged() -> None:
    payload = _payload("pull_request.closed")
    payload["pull_request"].update(merged=True, merged_at="2019-05-15T15:21:18Z")
    snapshot = _one("pull_request.closed", payload)
    assert (snapshot.state, snapshot.merged, snapshot.is_pull_request) == ("closed", True, True)


@pytest.mark.parametrize("name", ["pull_request.reopened", "pull_request.synchronize"])
def test_reopened_or_pushed_github_pull_request_is_open(name: str) -> None:
    snapshot = _one(name, _payload(name))
    assert (snapshot.state, snapshot.merged, snapshot.closed_at) == ("open", False, None)


def test_labeled_github_pull_request_keeps_its_milestone() -> None:
    snapshot = _one("pull_request.labeled", _payload("pull_request.labeled"))
    assert (snapshot.labels, snapshot.milestone) == (["bug"], "v1.0")


@pytest.mark.parametrize(
    "name", ["issue_comment.created", "milestone.closed", "release.published", "ping"]
)
def test_github_events_that_are_not_about_an_issue_are_ignored(name: str) -> None:
    payload = _payload(name)
    action = payload.get("action")
    event = name.partition(".")[0]
    assert snapshots(f"{event}.{action}" if action else event, payload) == []


def test_github_payload_that_is_not_an_object_fails() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        snapshots("issues.opened", ["not", "an", "issue"])


def test_github_issue_event_without_an_issue_fails() -> None:
    payload = _payload("issues.opened")
    del payload["issue"]
    with pytest.raises(ValueError, match="no issue object"):
        snapshots("issues.opened", payload)
