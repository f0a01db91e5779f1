"""Linear cycles and projects: mapped from the real payloads, stored, emitted, filtered, cleared."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from prodops.contract import TrackerCycle
from prodops.runtime.settings import Settings
from roadmap.webhooks.linear import snapshots
from support import auth, emitted

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "linear"
ZULIP_CYCLE = "eaef2755-de5b-4342-accb-79060378493f"  # number 1, no name
KOR_CYCLE = "8becebd5-xxxx-xxxx-xxxx-5a4c46206590"  # sent as `cycleId` alone


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def _without_cycle(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as Linear sends it once the issue left its cycle (nulls are left out)."""
    data = {k: v for k, v in payload["data"].items() if k not in {"cycle", "cycleId"}}
    return payload | {"data": data, "updatedFrom": {"cycleId": ZULIP_CYCLE}}


def test_linear_cycle_is_its_id_number_and_name() -> None:
    payload = _fixture("zulip.issue_update")
    [issue] = snapshots("Issue.update", payload)
    assert issue.cycle == TrackerCycle(id=ZULIP_CYCLE, number=1)
    assert "cycle" not in issue.cleared
    payload["data"]["cycle"]["name"] = "Hardening"
    [named] = snapshots("Issue.update", payload)
    assert named.cycle == TrackerCycle(id=ZULIP_CYCLE, number=1, name="Hardening")


def test_older_linear_payload_names_its_cycle_by_id_only() -> None:
    [issue] = snapshots("Issue.update", _fixture("korosuke613.updateIssueCycle"))
    assert issue.cycle == TrackerCycle(id=KOR_CYCLE)


def test_linear_issue_without_a_cycle_clears_it() -> None:
    [issue] = snapshots("Issue.update", _without_cycle(_fixture("zulip.issue_update")))
    assert (issue.cycle, "cycle" in issue.cleared) == (None, True)


@pytest.mark.parametrize("number", [1.5, "1", True])
def test_linear_cycle_number_that_is_not_a_whole_number_is_left_out(number: object) -> None:
    payload = _fixture("zulip.issue_update")
    payload["data"]["cycle"]["number"] = number
    [issue] = snapshots("Issue.update", payload)
    assert issue.cycle == TrackerCycle(id=ZULIP_CYCLE)


class Linear:
    """A registered Linear source sending signed deliveries of the zulip issue."""

    def __init__(self, client: httpx.AsyncClient, settings: Settings, workspace: str) -> None:
        self.client, self.settings, self.workspace = client, settings, workspace
        self.reader = auth(settings, workspace, "roadmap:read")
        self.url, self.secret = "", ""

    async def register(self) -> Linear:
        """Create the source."""
        admin = auth(self.settings, self.workspace, "admin")
        body = {"provider": "linear", "name": "Linear"}
        answer = await self.client.post("/v1/sources", headers=admin, json=body)
        assert answer.status_code == 201, answer.text
        self.url, self.secret = answer.json()["webhook_url"], answer.json()["secret"]
        return self

    async def send(self, payload: dict[str, Any]) -> None:
        """One signed delivery, sent now; it must be processed."""
        body = orjson.dumps(payload | {"webhookTimestamp": int(time.time() * 1000)})
        headers = {
            "Content-Type": "application/json",
            "Linear-Signature": hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest(),
            "Linear-Delivery": str(uuid.uuid4()),
            "Prefer": "wait=10",  # answer with the outcome of normalising it
        }
        answer = await self.client.post(self.url, content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "processed"

    async def keys(self, **filters: str) -> list[tuple[str, Any]]:
        """(key, cycle) of the issues the filters keep."""
        answer = await self.client.get("/v1/tracker-issues", headers=self.reader, params=filters)
        assert answer.status_code == 200, answer.text
        return [(i["key"], i["cycle"]) for i in answer.json()["items"]]


async def test_linear_cycle_is_stored_emitted_filtered_and_cleared(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    linear = await Linear(client, settings, workspace).register()
    payload = _fixture("zulip.issue_update")
    cycle = {"id": ZULIP_CYCLE, "number": 1, "name": None}

    await linear.send(payload)

    assert await linear.keys() == [("WEB-44", cycle)]
    for matching in ("1", ZULIP_CYCLE):
        assert await linear.keys(cycle=matching) == [("WEB-44", cycle)]
    assert await linear.keys(cycle="2") == []
    await linear.send(_without_cycle(payload))
    assert await linear.keys() == [("WEB-44", None)]
    assert await linear.keys(cycle="1") == []
    events = await emitted(settings, workspace, "roadmap")
    assert [d["cycle"] for t, d in events if t == "tracker_issue.upserted"] == [cycle, None]


async def test_linear_cycle_named_later_is_found_by_its_name_in_any_case(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    linear = await Linear(client, settings, workspace).register()
    payload = _fixture("zulip.issue_update")
    payload["data"]["cycle"]["name"] = "Hardening"

    await linear.send(payload)

    named = {"id": ZULIP_CYCLE, "number": 1, "name": "Hardening"}
    assert await linear.keys(cycle="hardening") == [("WEB-44", named)]


async def test_linear_cycle_sent_by_id_alone_keeps_the_number_known_for_that_id(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    linear = await Linear(client, settings, workspace).register()
    payload = _fixture("zulip.issue_update")
    await linear.send(payload)
    by_id = {k: v for k, v in payload["data"].items() if k != "cycle"}

    await linear.send(payload | {"data": by_id | {"title": "Retitled"}})
    assert await linear.keys() == [("WEB-44", {"id": ZULIP_CYCLE, "number": 1, "name": None})]
    await linear.send(payload | {"data": by_id | {"cycleId": KOR_CYCLE}})
    assert await linear.keys() == [("WEB-44", {"id": KOR_CYCLE, "number": None, "name": None})]


async def test_linear_issue_taken_out_of_its_project_leaves_the_projects_launch(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    writer = auth(settings, workspace, "roadmap:write", "roadmap:read")
    launch = await client.post("/v1/launches", headers=writer, json={"key": "SPRING", "name": "S"})
    assert launch.status_code == 201, launch.text
    linear = await Linear(client, settings, workspace).register()
    payload = _fixture("zulip.issue_update")
    in_project = payload["data"] | {"project": {"id": "p-1", "name": "SPRING"}, "projectId": "p-1"}

    await linear.send(payload | {"data": in_project})
    linked = await client.get("/v1/tracker-issues", headers=writer, params={"launch": "SPRING"})
    assert [i["key"] for i in linked.json()["items"]] == ["WEB-44"]

    out = {k: v for k, v in payload["data"].items() if k not in {"project", "projectId"}}
    await linear.send(payload | {"data": out, "updatedFrom": {"projectId": "p-1"}})
    left = await client.get("/v1/tracker-issues", headers=writer, params={"launch": "SPRING"})
    assert left.json()["items"] == []
    events = await emitted(settings, workspace, "roadmap")
    launches = [d["launch_keys"] for t, d in events if t == "tracker_issue.upserted"]
    assert launches == [["SPRING"], []]


def test_linear_issue_without_a_project_clears_it() -> None:
    payload = _fixture("zulip.issue_update")
    [issue] = snapshots("Issue.update", payload)
    assert "project" in issue.cleared
    payload["data"]["projectId"] = "p-1"
    [member] = snapshots("Issue.update", payload)
    assert "project" not in member.cleared
