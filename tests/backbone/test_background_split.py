"""A service split in two: processes serving HTTP only (`PRODOPS_BACKGROUND=false`) beside one
that runs the background work (relay, consumers, webhook normaliser, periodic jobs)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from insights.engine import CONSUMER
from prodops.contract import make_event
from prodops.runtime.settings import Settings
from prodops_cli import commands as cli
from signing import github_delivery
from support import (
    auth,
    create_app,
    eventually,
    item_upserted,
    publish,
    query,
    query_value,
    running,
    summary,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "github"
# Longer than any wait below: what the background process does in time, a NOTIFY woke it for.
NO_POLLING = {"webhook_normalise_poll_seconds": 120.0, "outbox_poll_interval_seconds": 120.0}


def _tasks(app: FastAPI) -> set[str]:
    return {task.get_name() for task in app.state.runtime.tasks}


async def _delivery_status(settings: Settings, delivery_id: str) -> str:
    status: str = await query_value(
        settings,
        "SELECT status FROM roadmap.webhook_delivery WHERE id = $1",
        uuid.UUID(delivery_id),
    )
    return status


async def _unsent(settings: Settings, workspace: str) -> int:
    count: int = await query_value(
        settings,
        "SELECT count(*) FROM roadmap.outbox WHERE workspace = $1 AND sent_at IS NULL",
        workspace,
    )
    return count


async def _opened_issue(
    roadmap: httpx.AsyncClient, settings: Settings, workspace: str, label: str
) -> httpx.Response:
    admin = auth(settings, workspace, "admin")
    source = await roadmap.post(
        "/v1/sources", headers=admin, json={"provider": "github", "name": "GitHub"}
    )
    opened = orjson.loads((FIXTURES / "issues.opened.json").read_bytes())
    opened["issue"]["labels"] = [{"name": f"roadmap:{label}"}]
    body, headers = github_delivery(source.json()["secret"], "issues", opened)
    return await roadmap.post(source.json()["webhook_url"], content=body, headers=headers)


async def test_a_process_without_background_work_stores_and_answers_but_maps_and_relays_nothing(
    settings: Settings, workspace: str
) -> None:
    http_only = settings.model_copy(
        update={"background": False, "webhook_normalise_poll_seconds": 0.1}
    )
    app = create_app("roadmap", http_only)
    async with running(app) as roadmap:
        assert _tasks(app) == {"roadmap-webhook-writer"}
        answer = await _opened_issue(roadmap, http_only, workspace, "HO-1")
        assert (answer.status_code, answer.json()["status"]) == (202, "received")
        writer = auth(settings, workspace, "roadmap:write")
        item = await roadmap.post("/v1/items", headers=writer, json={"title": "Split"})
        assert item.status_code == 201, item.text
        await asyncio.sleep(1.0)  # ten of the polls a normaliser here would make
        assert await _delivery_status(settings, answer.json()["id"]) == "received"
        assert await _unsent(settings, workspace) == 1  # the item's event, not relayed


async def test_deliveries_stored_by_an_http_only_process_are_mapped_and_relayed_by_another(
    settings: Settings, workspace: str
) -> None:
    http_app = create_app("roadmap", settings.model_copy(update={"background": False}))
    worker_app = create_app("roadmap", settings.model_copy(update=NO_POLLING))
    async with running(worker_app), running(http_app) as roadmap:
        # The worker's startup pass is over: only a NOTIFY can make it look again in time.
        await asyncio.sleep(0.5)
        answer = await _opened_issue(roadmap, settings, workspace, "HO-2")
        assert (answer.status_code, answer.json()["status"]) == (202, "received")
        status = await eventually(
            lambda: _delivery_status(settings, answer.json()["id"]),
            lambda s: s == "processed",
            within=10,
        )
        assert status == "processed"
        await eventually(lambda: _unsent(settings, workspace), lambda n: n == 0, within=10)
        reader = auth(settings, workspace, "roadmap:read")
        issues = await roadmap.get("/v1/tracker-issues?item=HO-2", headers=reader)
    assert len(issues.json()["items"]) == 1


async def test_an_http_only_insights_consumes_nothing_but_replays_a_dead_letter(
    settings: Settings, workspace: str, headers: dict[str, str]
) -> None:
    app = create_app("insights", settings.model_copy(update={"background": False}))
    event = make_event(item_upserted(1, "Replayed"), service="roadmap", workspace=workspace)
    async with running(app) as client:
        assert _tasks(app) == set()
        await publish(settings, event)
        await asyncio.sleep(1.0)
        assert (await summary(client, headers))["items"] == 0  # not consumed here
        letter = await _dead_letter(settings, event.to_bytes(), workspace, event.id, event.type)
        replay = await client.post(f"/v1/dead-letters/{letter}/replay", headers=headers)
        assert (replay.status_code, replay.json()["applied"]) == (200, True), replay.text
        assert (await summary(client, headers))["items"] == 1


async def _dead_letter(
    settings: Settings, payload: bytes, workspace: str, event_id: uuid.UUID, kind: str
) -> uuid.UUID:
    letter = uuid.uuid4()
    await query(
        settings,
        "INSERT INTO insights.dead_letter (id, consumer, event_id, workspace, type, subject,"
        " payload, error, deliveries) VALUES ($1, $2, $3, $4, $5, 'test', $6, 'failed', 5)",
        letter,
        CONSUMER,
        event_id,
        workspace,
        kind,
        payload,
    )
    return letter


@pytest.mark.parametrize(("flag", "expected"), [("--no-background", False), (None, True)])
def test_serve_passes_background_to_the_app(
    monkeypatch: pytest.MonkeyPatch, flag: str | None, expected: bool
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append(app))
    # Recorded, so that what `serve` writes to the environment is undone after the test.
    monkeypatch.setenv("PRODOPS_BACKGROUND", "true")
    monkeypatch.delenv("PRODOPS_BACKGROUND")
    args = ["serve", "roadmap", *([flag] if flag else [])]
    result = CliRunner().invoke(cli.app, args, env={"PRODOPS_ENV": "development"})
    assert result.exit_code == 0, result.output
    assert served[0].state.settings.background is expected
