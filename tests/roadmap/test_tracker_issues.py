"""Tracker issues through signed webhooks and the API, against the real PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from prodops.http.auth import install_auth
from prodops.http.problems import install_problem_handlers
from prodops.runtime.db import Pool
from prodops.runtime.settings import Settings
from prodops.webhooks.endpoint import WebhookEndpoint, webhook_routers
from prodops.webhooks.intake import Intake
from prodops.webhooks.sources import sources_router
from roadmap.tracker import PROVIDERS, normalise_deliveries
from roadmap.tracker_api import router
from roadmap.tracker_rules import merged_fields
from roadmap.tracker_snapshot import TrackerIssueSnapshot
from support import assert_problem, auth, emitted
from webhook_kit import intake_running

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"


def _fixture(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / path).read_text())
    return loaded


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
async def client(settings: Settings, pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    install_auth(app, settings)
    app.state.pool, app.state.settings = pool, settings
    app.include_router(router)
    app.include_router(sources_router(providers=PROVIDERS))
    intake = Intake(normalise_deliveries)
    for webhooks in webhook_routers(WebhookEndpoint(PROVIDERS, intake)):
        app.include_router(webhooks)
    transport = httpx.ASGITransport(app=app)
    async with (
        intake_running(intake, pool, settings),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        yield http


class Tracker:
    """A registered tracker source that sends signed deliveries, as the vendor would."""

    def __init__(self, client: httpx.AsyncClient, provider: str, source: dict[str, Any]) -> None:
        self.client, self.provider = client, provider
        self.url, self.secret = source["webhook_url"], source["secret"]

    async def send(
        self, payload: dict[str, Any], event: str = "", delivery: str = "", *, wait: bool = True
    ) -> str:
        """POST one signed delivery; returns the pipeline's status for it (`wait`: normalised)."""
        body = orjson.dumps(payload)
        delivery = delivery or str(uuid.uuid4())
        headers = {"Content-Type": "application/json", **self._headers(body, event, delivery)}
        if wait:
            headers["Prefer"] = "wait=10"  # answer with the outcome of normalising it
        answer = await self.client.post(self.url, content=body, headers=headers)
        assert answer.status_code in {200, 202}, answer.text
        status: str = answer.json()["status"]
        return status

    def _headers(self, body: bytes, event: str, delivery: str) -> dict[str, str]:
        if self.provider == "github":
            return {
                "X-Hub-Signature-256": "sha256=" + _hex(self.secret, body),
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery,
            }
        if self.provider == "jira":
            return {
                "X-Hub-Signature": "sha256=" + _hex(self.secret, body),
                "X-Atlassian-Webhook-Identifier": delivery,
            }
        return {"Linear-Signature": _hex(self.secret, body), "Linear-Delivery": delivery}


async def _tracker(
    client: httpx.AsyncClient, settings: Settings, workspace: str, provider: str = "github"
) -> Tracker:
    answer = await client.post(
        "/v1/sources",
        headers=auth(settings, workspace, "admin"),
        json={"provider": provider, "name": f"{provider} tracker"},
    )
    assert answer.status_code == 201, answer.text
    return Tracker(client, provider, answer.json())


NORMALISER_LOCK = "SELECT pg_advisory_lock(hashtext('webhook-normaliser:roadmap'))"
NORMALISER_UNLOCK = "SELECT pg_advisory_unlock(hashtext('webhook-normaliser:roadmap'))"


def _github_issue(action: str = "opened", **changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(_fixture("github/issues.opened.json"))
    payload["action"] = action
    payload["issue"].update({"labels": [], "milestone": None}, **changes)
    return payload


def _labels(*names: str) -> list[dict[str, str]]:
    return [{"name": name} for name in names]


async def _issues(
    client: httpx.AsyncClient, headers: dict[str, str], **filters: Any
) -> list[dict[str, Any]]:
    answer = await client.get("/v1/tracker-issues", headers=headers, params=filters)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _tracker_events(settings: Settings, workspace: str) -> list[tuple[str, dict[str, Any]]]:
    return [e for e in await emitted(settings, workspace, "roadmap") if e[0].startswith("tracker")]


async def test_opened_blocked_milestoned_closed_issue_ends_closed_with_one_event_per_change(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    blocker, milestone = _labels("blocker"), {"title": "LAUNCH-1"}
    steps = [
        _github_issue("opened"),
        _github_issue("labeled", labels=blocker) | {"label": {"name": "blocker"}},
        _github_issue("milestoned", labels=blocker, milestone=milestone),
        _github_issue(
            "closed",
            labels=blocker,
            milestone=milestone,
            state="closed",
            closed_at="2019-05-20T10:00:00Z",
        ),
    ]
    for payload in steps:
        assert await github.send(payload, "issues") == "processed"

    [issue] = await _issues(client, auth(settings, workspace, "roadmap:read"))
    # The facts only: whether it blocks is the readiness policy's verdict, in insights.
    assert (issue["key"], issue["state"], "blocker" in issue) == (
        "Codertocat/Hello-World#1",
        "closed",
        False,
    )
    assert (issue["labels"], issue["launch_keys"], issue["version"]) == (
        ["blocker"],
        ["LAUNCH-1"],
        4,
    )
    events = await _tracker_events(settings, workspace)
    assert [
        (kind, data["version"], data["labels"], data["launch_keys"]) for kind, data in events
    ] == [
        ("tracker_issue.upserted", 1, [], []),
        ("tracker_issue.upserted", 2, ["blocker"], []),
        ("tracker_issue.upserted", 3, ["blocker"], ["LAUNCH-1"]),
        ("tracker_issue.upserted", 4, ["blocker"], ["LAUNCH-1"]),
    ]
    assert not any("blocker" in data for _, data in events)
    assert events[-1][1]["state"] == "closed"


async def test_roadmap_label_links_an_item_and_removing_it_unlinks(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    headers = auth(settings, workspace, "roadmap:read")
    await github.send(_github_issue("labeled", labels=_labels("roadmap:ck-1")), "issues")
    assert [i["item_keys"] for i in await _issues(client, headers, item="CK-1")] == [["CK-1"]]

    await github.send(_github_issue("unlabeled"), "issues")
    assert await _issues(client, headers, item="CK-1") == []
    _, last = (await _tracker_events(settings, workspace))[-1]
    assert (last["version"], last["item_keys"]) == (2, [])


async def test_explicit_api_link_survives_a_label_change(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    await github.send(_github_issue("labeled", labels=_labels("roadmap:CK-1")), "issues")
    ref = {"provider": "github", "external_id": "444500041"}
    answer = await client.put(
        "/v1/items/CK-1/tracker-links", headers=auth(settings, workspace), json=ref
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["links"] == [{"target": "item", "key": "CK-1", "by": "api"}]
    url = "https://github.com/Codertocat/Hello-World/issues/1"
    answer = await client.put(
        "/v1/items/ck-2/tracker-links", headers=auth(settings, workspace), json={"url": url}
    )
    assert answer.json()["item_keys"] == ["CK-1", "CK-2"]

    await github.send(_github_issue("unlabeled"), "issues")
    [issue] = await _issues(client, auth(settings, workspace, "roadmap:read"))
    assert issue["item_keys"] == ["CK-1", "CK-2"]

    answer = await client.request(
        "DELETE", "/v1/items/CK-2/tracker-links", headers=auth(settings, workspace), json=ref
    )
    assert answer.json()["item_keys"] == ["CK-1"]
    versions = [d["version"] for _, d in await _tracker_events(settings, workspace)]
    assert versions == [1, 2, 3, 4]  # labelled, CK-2 linked, unlabelled, CK-2 unlinked


async def test_redelivered_and_repeated_github_deliveries_change_nothing(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    payload = _github_issue("opened", labels=_labels("bug"))
    assert await github.send(payload, "issues", delivery="d-1") == "processed"
    assert await github.send(payload, "issues", delivery="d-1") == "duplicate"
    assert await github.send(payload, "issues", delivery="d-2") == "processed"
    events = await _tracker_events(settings, workspace)
    assert [(kind, d["version"], d["kind"]) for kind, d in events] == [
        ("tracker_issue.upserted", 1, "bug")
    ]


async def test_jira_and_linear_deliveries_become_issues_with_their_key_and_priority(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    jira = await _tracker(client, settings, workspace, "jira")
    linear = await _tracker(client, settings, workspace, "linear")
    assert await jira.send(_fixture("jira/webhook-issue-created.json")) == "processed"
    update = _fixture("linear/zulip.issue_update.json")
    update["webhookTimestamp"] = int(time.time() * 1000)
    assert await linear.send(update) == "processed"

    headers = auth(settings, workspace, "roadmap:read")
    found = {i["key"]: i["priority"] for i in await _issues(client, headers)}
    assert found == {"TES-41": "high", "WEB-44": "urgent"}
    [linear_issue] = await _issues(client, headers, provider="linear", priority="urgent")
    assert linear_issue["key"] == "WEB-44"


async def test_deleted_issue_emits_tracker_issue_deleted_and_leaves_the_list(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    await github.send(_github_issue("opened"), "issues")
    [issue] = await _issues(client, auth(settings, workspace, "roadmap:read"))
    assert await github.send(_github_issue("deleted"), "issues") == "processed"

    assert await _issues(client, auth(settings, workspace, "roadmap:read")) == []
    answer = await client.get(
        f"/v1/tracker-issues/{issue['id']}", headers=auth(settings, workspace)
    )
    assert_problem(answer, 404)
    kind, data = (await _tracker_events(settings, workspace))[-1]
    assert (kind, data) == ("tracker_issue.deleted", {"id": issue["id"], "version": 2})


async def test_list_filters_by_priority_launch_and_state_and_pages_newest_first(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    await github.send(_github_issue(labels=_labels("P0")), "issues")
    await github.send(_github_issue(id=2, number=2, milestone={"title": "LAUNCH-2"}), "issues")
    await github.send(_github_issue(id=3, number=3, state="closed"), "issues")
    headers = auth(settings, workspace, "roadmap:read")

    keys = [i["key"].rsplit("#")[-1] for i in await _issues(client, headers)]
    assert keys == ["3", "2", "1"]
    assert [i["key"][-1] for i in await _issues(client, headers, priority="urgent")] == ["1"]
    assert [i["key"][-1] for i in await _issues(client, headers, launch="LAUNCH-2")] == ["2"]
    assert [i["key"][-1] for i in await _issues(client, headers, state="closed")] == ["3"]
    first = await client.get("/v1/tracker-issues", headers=headers, params={"limit": 2})
    rest = await client.get(
        "/v1/tracker-issues", headers=headers, params={"cursor": first.json()["next_cursor"]}
    )
    assert [i["key"][-1] for i in rest.json()["items"]] == ["1"]


@pytest.mark.parametrize("value", ["true", "false", ""])
async def test_the_blocker_filter_answers_400_naming_insights_readiness_policy(
    client: httpx.AsyncClient, settings: Settings, workspace: str, value: str
) -> None:
    answer = await client.get(
        "/v1/tracker-issues",
        headers=auth(settings, workspace, "roadmap:read"),
        params={"blocker": value},
    )
    assert (answer.status_code, answer.headers["content-type"]) == (400, "application/problem+json")
    detail = answer.json()["detail"]
    assert "readiness policy" in detail
    assert "insights" in detail


async def test_another_workspace_sees_nothing_and_cannot_link(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    await github.send(_github_issue(), "issues")
    [issue] = await _issues(client, auth(settings, workspace, "roadmap:read"))
    other = auth(settings, f"{workspace}-other")

    assert await _issues(client, other) == []
    answer = await client.get(f"/v1/tracker-issues/{issue['id']}", headers=other)
    assert answer.status_code == 404
    answer = await client.put(
        "/v1/launches/LAUNCH-1/tracker-links",
        headers=other,
        json={"provider": "github", "external_id": "444500041"},
    )
    assert (answer.status_code, answer.headers["content-type"]) == (404, "application/problem+json")


async def test_read_only_token_cannot_link(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    github = await _tracker(client, settings, workspace)
    await github.send(_github_issue(), "issues")
    answer = await client.put(
        "/v1/launches/LAUNCH-1/tracker-links",
        headers=auth(settings, workspace, "roadmap:read"),
        json={"provider": "github", "external_id": "444500041"},
    )
    assert answer.status_code == 403
    [issue] = await _issues(client, auth(settings, workspace, "roadmap:read"))
    assert issue["launch_keys"] == []


def test_gitlab_keeps_its_unsent_milestone_and_jira_its_unknown_fields_but_github_clears() -> None:
    stored = merged_fields(
        None,
        TrackerIssueSnapshot(
            provider="github", external_id="1", key="a#1", labels=["x"], milestone="LAUNCH-1"
        ),
    )
    after = {
        provider: merged_fields(
            stored, TrackerIssueSnapshot(provider=provider, external_id="1", key="a#1")
        )
        for provider in ("github", "gitlab", "jira")
    }
    assert (after["github"]["milestone"], after["github"]["labels"]) == (None, [])
    assert (after["gitlab"]["milestone"], after["gitlab"]["labels"]) == ("LAUNCH-1", [])
    assert (after["jira"]["milestone"], after["jira"]["labels"]) == ("LAUNCH-1", ["x"])


async def test_one_batch_of_two_workspaces_applies_in_order_and_a_bad_delivery_fails_alone(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    other = f"b-{workspace}"[:60]
    trackers = [await _tracker(client, settings, ws) for ws in (workspace, other)]
    blocker, milestone = _labels("blocker"), {"title": "LAUNCH-1"}
    steps = [
        _github_issue("opened"),
        _github_issue("labeled", labels=blocker) | {"label": {"name": "blocker"}},
        _github_issue("milestoned", labels=blocker, milestone=milestone),
        _github_issue("closed", labels=blocker, milestone=milestone, state="closed"),
    ]
    async with pool.acquire() as holder:
        # Holding the normaliser's lock makes everything below wait for one batch.
        await holder.execute(NORMALISER_LOCK)
        try:
            for n, payload in enumerate(steps):  # interleaved across the two workspaces
                for tracker in trackers:
                    assert await tracker.send(payload, "issues", wait=False) == "received"
                if n == 1:  # a delivery the mapper cannot handle, in the middle
                    sent = await trackers[0].send({"action": "opened"}, "issues", wait=False)
                    assert sent == "received"
        finally:
            await holder.execute(NORMALISER_UNLOCK)
    assert await trackers[1].send(_github_issue("reopened"), "issues") == "processed"
    for ws in (workspace, other):
        events = await _tracker_events(settings, ws)
        changes = [(data["version"], data["labels"], data["state"]) for _, data in events]
        assert changes[:4] == [
            (1, [], "open"),
            (2, ["blocker"], "open"),
            (3, ["blocker"], "open"),
            (4, ["blocker"], "closed"),
        ]
    failed = await client.get(
        "/v1/deliveries?status=failed", headers=auth(settings, workspace, "admin")
    )
    assert [d["event_type"] for d in failed.json()["items"]] == ["issues.opened"]
