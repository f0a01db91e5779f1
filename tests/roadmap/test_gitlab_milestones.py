"""GitLab milestones link launches through GitLab's API, against a stand-in served on a socket."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from prodops.runtime.settings import Settings
from support import auth, create_app, emitted, query, quiesce, running

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "gitlab"
TOKEN = "glpat-stand-in-token-0123456789"
ISSUE_KEY = "gitlabhq/gitlab-test#23"  # issue.json; its project is 1, path gitlabhq/gitlab-test


class GitLabStandIn:
    """GitLab's milestone endpoints: titles per token and owner, a failure switch, a call log."""

    def __init__(self) -> None:
        # (token, "projects/<id>" or "groups/<path>", milestone id) -> title
        self.titles: dict[tuple[str, str, int], str] = {}
        self.failing: int | None = None
        self.delay = 0.0
        self.calls: list[tuple[str, str]] = []  # (owner, token) of every request
        self.url = ""
        # Run on every request before it is answered (to look at the database meanwhile).
        self.probe: Callable[[], Awaitable[None]] | None = None

    def milestone(self, milestone_id: int, title: str, owner: str = "projects/1") -> None:
        """Make `title` the milestone's title, as `TOKEN` sees it."""
        self.titles[TOKEN, owner, milestone_id] = title

    def app(self) -> FastAPI:
        """The stand-in's HTTP app."""
        app = FastAPI()

        @app.get("/api/v4/{scope}/{owner:path}/milestones/{milestone_id}")
        async def milestone(
            scope: str, owner: str, milestone_id: int, request: Request
        ) -> JSONResponse:
            token = request.headers.get("private-token", "")
            self.calls.append((f"{scope}/{owner}", token))
            if self.probe is not None:
                await self.probe()
            await asyncio.sleep(self.delay)
            if self.failing is not None:
                return JSONResponse({"message": "down"}, status_code=self.failing)
            title = self.titles.get((token, f"{scope}/{owner}", milestone_id))
            if title is None:
                return JSONResponse({"message": "404 Not found"}, status_code=404)
            return JSONResponse({"id": milestone_id, "iid": 1, "title": title})

        return app


@pytest.fixture
async def gitlab() -> AsyncIterator[GitLabStandIn]:
    stand_in = GitLabStandIn()
    config = uvicorn.Config(
        stand_in.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    stand_in.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield stand_in
    server.should_exit = True
    await task


@pytest.fixture
async def source(
    client: httpx.AsyncClient, settings: Settings, workspace: str, gitlab: GitLabStandIn
) -> GitLabSource:
    """A GitLab source of the test's workspace, with API access to the stand-in."""
    return await GitLabSource(client, settings, workspace).register(gitlab.url)


def _payload(milestone_id: int | None, name: str = "issue") -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    payload["object_attributes"]["milestone_id"] = milestone_id
    return payload


class GitLabSource:
    """A registered GitLab source of a workspace, sending deliveries as GitLab would."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings, workspace: str) -> None:
        self.client, self.workspace = client, workspace
        self.admin = auth(settings, workspace, "admin")
        self.reader = auth(settings, workspace, "roadmap:read", "roadmap:write")
        self.url, self.secret, self.id = "", "", ""

    async def register(self, base_url: str | None, token: str = TOKEN) -> GitLabSource:
        """Create the source, with API access to `base_url` unless None."""
        body = {"provider": "gitlab", "name": "GitLab"}
        answer = await self.client.post("/v1/sources", headers=self.admin, json=body)
        assert answer.status_code == 201, answer.text
        source = answer.json()
        self.url, self.secret, self.id = source["webhook_url"], source["secret"], source["id"]
        if base_url is not None:
            access = {"token": token, "base_url": base_url}
            answer = await self.client.put(self.access_path, headers=self.admin, json=access)
            assert answer.status_code == 200, answer.text
        return self

    @property
    def access_path(self) -> str:
        """Where the source's API access is set."""
        return f"/v1/sources/{self.id}/api-access"

    async def send(self, payload: dict[str, Any], hook: str = "Issue Hook") -> dict[str, Any]:
        """One delivery; returns the pipeline's answer."""
        headers = {
            "X-Gitlab-Token": self.secret,
            "X-Gitlab-Event": hook,
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            "Prefer": "wait=10",  # answer with the outcome of normalising it
        }
        answer = await self.client.post(self.url, json=payload, headers=headers)
        assert answer.status_code == 202, answer.text
        accepted: dict[str, Any] = answer.json()
        return accepted

    async def issue(self, key: str = ISSUE_KEY) -> dict[str, Any]:
        """The stored tracker issue of this key."""
        answer = await self.client.get("/v1/tracker-issues", headers=self.reader)
        assert answer.status_code == 200, answer.text
        [issue] = [i for i in answer.json()["items"] if i["key"] == key]
        return dict(issue)

    async def failed(self) -> list[dict[str, Any]]:
        """The workspace's failed deliveries."""
        answer = await self.client.get("/v1/deliveries?status=failed", headers=self.admin)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])


async def test_gitlab_issue_milestoned_to_a_launch_links_to_it(
    client: httpx.AsyncClient,
    settings: Settings,
    workspace: str,
    gitlab: GitLabStandIn,
    source: GitLabSource,
) -> None:
    launch = {"key": "LAUNCH-7", "name": "Launch seven"}
    assert (await client.post("/v1/launches", headers=source.reader, json=launch)).is_success
    gitlab.milestone(7, "LAUNCH-7")

    assert (await source.send(_payload(7)))["status"] == "processed"

    issue = await source.issue()
    assert (issue["milestone"], issue["launch_keys"]) == ("LAUNCH-7", ["LAUNCH-7"])
    answer = await client.get("/v1/launches/LAUNCH-7", headers=source.reader)
    assert answer.json()["delivery"]["issues_total"] == 1
    events = await emitted(settings, workspace, "roadmap")
    assert [d["launch_keys"] for t, d in events if t == "tracker_issue.upserted"] == [["LAUNCH-7"]]
    assert gitlab.calls == [("projects/1", TOKEN)]


# What the normaliser holds while it works: its lock, which every workspace's deliveries wait
# on, and the row locks and writes of its transaction (a plain read takes AccessShareLock only).
HELD_BY_THE_NORMALISER = """
SELECT l.locktype, l.mode, l.relation::regclass::text AS relation
FROM pg_locks l
WHERE (l.locktype = 'advisory'
       AND l.objid::bigint = (hashtext('webhook-normaliser:roadmap')::bigint & 4294967295))
   OR (l.relation IN ('roadmap.webhook_delivery'::regclass, 'roadmap.tracker_issue'::regclass,
                      'roadmap.gitlab_milestone'::regclass)
       AND l.mode <> 'AccessShareLock')
"""


async def test_gitlab_is_asked_while_the_normaliser_holds_no_lock_and_no_transaction(
    client: httpx.AsyncClient, settings: Settings, gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    held: list[list[tuple[str, str, str | None]]] = []
    watcher = await asyncpg.connect(settings.database_url)

    async def look() -> None:
        held.append([tuple(r) for r in await watcher.fetch(HELD_BY_THE_NORMALISER)])

    gitlab.probe = look
    try:
        for payload, hook in ((_payload(7), "Issue Hook"), (_payload(7), "Issue Hook")):
            await _expire_cached_titles(settings, source.id)
            assert (await source.send(payload, hook))["status"] == "processed"
        answer = (await source.send(_payload(7)))["id"]
        await _expire_cached_titles(settings, source.id)
        replayed = await client.post(f"/v1/deliveries/{answer}/replay", headers=source.admin)
        assert replayed.json()["status"] == "processed"
    finally:
        await watcher.close()
    assert len(held) == 3  # two deliveries normalised, one replayed, each asking GitLab once
    assert held == [[], [], []]
    assert (await source.issue())["launch_keys"] == ["LAUNCH-7"]


async def test_gitlab_milestone_title_is_cached_so_the_next_delivery_asks_nothing(
    gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    await source.send(_payload(7))
    gitlab.failing = 503  # a second call would now fail the delivery

    answer = await source.send(_payload(7, "merge_request"), "Merge Request Hook")

    assert answer["status"] == "processed"
    merge_request = await source.issue("gitlabhq/gitlab-test!1")
    assert merge_request["launch_keys"] == ["LAUNCH-7"]
    assert len(gitlab.calls) == 1


async def test_gitlab_group_milestone_is_read_from_the_projects_group(
    gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(9, "LAUNCH-G", owner="groups/gitlabhq")

    assert (await source.send(_payload(9)))["status"] == "processed"

    assert (await source.issue())["launch_keys"] == ["LAUNCH-G"]
    assert [owner for owner, _ in gitlab.calls] == ["projects/1", "groups/gitlabhq"]


async def test_gitlab_api_down_fails_the_delivery_and_replay_links_it(
    client: httpx.AsyncClient, gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    gitlab.failing = 503

    answer = await source.send(_payload(7))

    assert answer["status"] == "failed"
    [failed] = await source.failed()
    assert failed["id"] == answer["id"]
    assert "GitLab API answered 503 for milestone 7" in failed["error"]
    listed = await client.get("/v1/tracker-issues", headers=source.reader)
    assert listed.json()["items"] == []
    gitlab.failing = None
    replayed = await client.post(f"/v1/deliveries/{answer['id']}/replay", headers=source.admin)
    assert replayed.json()["status"] == "processed"
    assert (await source.issue())["launch_keys"] == ["LAUNCH-7"]
    assert await source.failed() == []


@pytest.mark.parametrize(
    "answer", [(401, "answered 401"), (404, "knows no milestone 7 of gitlabhq/gitlab-test")]
)
async def test_gitlab_refusing_or_not_knowing_the_milestone_fails_the_delivery(
    gitlab: GitLabStandIn, answer: tuple[int, str], source: GitLabSource
) -> None:
    gitlab.failing, error = answer

    assert (await source.send(_payload(7)))["status"] == "failed"

    [failed] = await source.failed()
    assert error in failed["error"]
    assert TOKEN not in failed["error"]


async def test_unreachable_gitlab_api_fails_the_delivery(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    source = await GitLabSource(client, settings, workspace).register(f"http://127.0.0.1:{port}")

    assert (await source.send(_payload(7)))["status"] == "failed"

    [failed] = await source.failed()
    assert "unreachable (ConnectError)" in failed["error"]


async def test_slow_gitlab_api_fails_the_delivery_within_the_timeout(
    settings: Settings, workspace: str, gitlab: GitLabStandIn
) -> None:
    app = create_app("roadmap", settings.model_copy(update={"gitlab_api_timeout_seconds": 0.3}))
    gitlab.milestone(7, "LAUNCH-7")
    gitlab.delay = 3.0
    async with running(app) as client:
        source = await GitLabSource(client, settings, workspace).register(gitlab.url)
        started = time.monotonic()
        answer = await source.send(_payload(7))
        elapsed = time.monotonic() - started
        [failed] = await source.failed()
        await quiesce(app)
    assert answer["status"] == "failed"
    assert elapsed < 2.0
    assert "unreachable" in failed["error"]


async def test_expired_title_is_read_again_and_a_renamed_milestone_moves_the_link(
    settings: Settings, gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    await source.send(_payload(7))
    gitlab.milestone(7, "LAUNCH-8")
    await _expire_cached_titles(settings, source.id)

    assert (await source.send(_payload(7)))["status"] == "processed"

    assert (await source.issue())["launch_keys"] == ["LAUNCH-8"]
    assert len(gitlab.calls) == 2


async def test_expired_title_is_kept_while_the_gitlab_api_is_down(
    settings: Settings, gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    await source.send(_payload(7))
    await _expire_cached_titles(settings, source.id)
    gitlab.failing = 502
    payload = _payload(7, "merge_request")

    assert (await source.send(payload, "Merge Request Hook"))["status"] == "processed"

    assert (await source.issue("gitlabhq/gitlab-test!1"))["launch_keys"] == ["LAUNCH-7"]
    assert len(gitlab.calls) == 2


async def test_demilestoned_gitlab_issue_leaves_the_launch(
    gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    await source.send(_payload(7))

    assert (await source.send(_payload(None)))["status"] == "processed"

    issue = await source.issue()
    assert (issue["milestone"], issue["launch_keys"]) == (None, [])


async def test_gitlab_milestone_without_a_token_links_nothing_but_an_explicit_link_holds(
    client: httpx.AsyncClient, settings: Settings, workspace: str, gitlab: GitLabStandIn
) -> None:
    source = await GitLabSource(client, settings, workspace).register(None)
    gitlab.milestone(7, "LAUNCH-7")

    assert (await source.send(_payload(7)))["status"] == "processed"

    assert (await source.issue())["launch_keys"] == []
    assert gitlab.calls == []
    ref = {"provider": "gitlab", "external_id": "301"}
    linked = await client.put(
        "/v1/launches/LAUNCH-7/tracker-links", headers=source.reader, json=ref
    )
    assert linked.json()["launch_keys"] == ["LAUNCH-7"]
    assert (await source.send(_payload(7)))["status"] == "processed"
    assert (await source.issue())["launch_keys"] == ["LAUNCH-7"]


async def test_deleted_api_access_stops_linking_milestones(
    client: httpx.AsyncClient, gitlab: GitLabStandIn, source: GitLabSource
) -> None:
    gitlab.milestone(7, "LAUNCH-7")
    await source.send(_payload(7))

    assert (await client.delete(source.access_path, headers=source.admin)).status_code == 204

    await source.send(_payload(8, "merge_request"), "Merge Request Hook")
    assert (await source.issue("gitlabhq/gitlab-test!1"))["launch_keys"] == []
    assert len(gitlab.calls) == 1
    assert (await client.delete(source.access_path, headers=source.admin)).status_code == 404


async def test_same_milestone_id_in_two_workspaces_links_each_to_its_own_title(
    client: httpx.AsyncClient, settings: Settings, workspace: str, gitlab: GitLabStandIn
) -> None:
    other_token = "glpat-other-workspace-token-987"
    ours = await GitLabSource(client, settings, workspace).register(gitlab.url)
    theirs = GitLabSource(client, settings, f"ws-{uuid.uuid4().hex[:10]}")
    await theirs.register(gitlab.url, token=other_token)
    gitlab.milestone(7, "LAUNCH-OURS")
    gitlab.titles[other_token, "projects/1", 7] = "LAUNCH-THEIRS"

    await ours.send(_payload(7))
    await theirs.send(_payload(7))

    assert (await ours.issue())["launch_keys"] == ["LAUNCH-OURS"]
    assert (await theirs.issue())["launch_keys"] == ["LAUNCH-THEIRS"]
    assert sorted(token for _, token in gitlab.calls) == sorted([TOKEN, other_token])
    answer = await client.get(ours.access_path, headers=theirs.admin)
    assert answer.status_code == 404


async def _expire_cached_titles(settings: Settings, source_id: str) -> None:
    await query(
        settings,
        "UPDATE roadmap.gitlab_milestone SET fetched_at = now() - interval '1 day'"
        " WHERE source_id = $1",
        uuid.UUID(source_id),
    )
