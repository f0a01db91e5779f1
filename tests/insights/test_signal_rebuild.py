"""Two replicas give the same signals as one, and a rebuild from the stream equals them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from insights.projection.rebuild import rebuild
from prodops.runtime.settings import Settings
from signal_events import Builder, days_ago
from support import auth, create_app, eventually, publish, run_cli, running

TIMES = ("computed_at", "changed_at")


def _workload(b: Builder) -> list[Any]:
    events = [b.objective("grow", 3), b.objective("keep", 1), b.account("acme", 50_000)]
    for n in range(12):
        objectives = ("grow",) if n % 3 else ("keep",)
        area = "billing" if n % 2 else "search"
        events.append(b.item(f"K-{n}", effort=1 + n % 4, objectives=objectives, area=area))
    events.append(b.launch("L1", items=("K-1", "K-2"), checklist=(("docs", False), ("qa", True))))
    for n in range(10):
        events.append(
            b.issue(
                f"acme/shop#{n}",
                item_keys=[f"K-{n % 3}"],
                kind="bug" if n % 4 else "task",
                priority="high" if n == 5 else "medium",
                state="closed" if n % 2 else "open",
                closed_at=days_ago(n) if n % 2 else None,
            )
        )
    for n in range(20):
        events.append(
            b.feedback(
                f"f{n}",
                account_external_id="acme" if n % 2 else None,
                item_keys=[f"K-{n % 6}"],
                tags=[f"t{n % 3}"],
                created_at=days_ago(n * 5),
                sentiment=-0.5 if n % 5 == 0 else 0.3,
            )
        )
    # Later versions: moves and status changes the replicas must apply in order.
    events += [
        b.item("K-3", status="in_progress", objectives=("keep",), area="search", effort=2),
        b.item("K-4", status="dropped", objectives=("grow",), area="search"),
        b.feedback("f7", account_external_id="acme", merged_into="f1", created_at=days_ago(3)),
    ]
    return events


async def _signals(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    def strip(value: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k not in TIMES}

    alignment = (await client.get("/v1/signals/alignment", headers=headers)).json()
    areas = (await client.get("/v1/signals/alignment/areas", headers=headers)).json()["items"]
    launches = (await client.get("/v1/signals/launches", headers=headers)).json()["items"]
    demand = (await client.get("/v1/demand", headers=headers)).json()
    return {
        "alignment": strip(alignment),
        "areas": [strip(a) for a in areas],
        "launches": [strip(s) for s in launches],
        "demand": demand,
    }


async def test_two_replicas_agree_with_a_rebuild_from_the_stream(
    settings: Settings, workspace: str
) -> None:
    other = f"{workspace}-b"
    builders = [Builder(workspace), Builder(other)]
    headers = [auth(settings, ws, "insights:read") for ws in (workspace, other)]
    first, second = create_app("insights", settings), create_app("insights", settings)
    async with running(first) as client, running(second):
        workloads = [_workload(b) for b in builders]
        # Interleaved, so both replicas hold batches of both workspaces at once.
        await asyncio.gather(*(publish(settings, *w) for w in workloads))

        await eventually(
            lambda: _applied(first, [workspace, other]),
            lambda n: n == sum(len(w) for w in workloads),
        )
        live = [await _signals(client, h) for h in headers]
    assert live[0]["alignment"]["strategic"] > 0
    assert live[0]["demand"]["items"], "the workload has demand"
    assert {a["area"] for a in live[0]["areas"]} == {"billing", "search"}

    report = await rebuild(settings)
    assert report.failed == 0
    assert report.applied == 2 * len(workloads[0])

    async with running(create_app("insights", settings)) as client:
        rebuilt = [await _signals(client, h) for h in headers]
    assert rebuilt == live


async def test_the_rebuild_command_replays_the_stream(settings: Settings, workspace: str) -> None:
    headers = auth(settings, workspace, "insights:read")
    workload = _workload(Builder(workspace))
    app = create_app("insights", settings)
    async with running(app) as client:
        await publish(settings, *workload)
        await eventually(lambda: _applied(app, [workspace]), lambda n: n == len(workload))
        live = await _signals(client, headers)
    out = await run_cli(settings, "insights", "rebuild")
    assert f"{len(workload)} applied" in out
    assert out.rstrip().endswith("0 failed")
    async with running(create_app("insights", settings)) as client:
        assert await _signals(client, headers) == live


async def _applied(app: FastAPI, workspaces: list[str]) -> int:
    count: int = await app.state.pool.fetchval(
        "SELECT count(*) FROM inbox WHERE workspace = ANY($1::text[])", workspaces
    )
    return count


async def test_an_event_that_cannot_be_applied_is_reported_and_the_rest_rebuilt(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    good = [b.item("A"), b.launch("L1", items=("A",))]
    broken = b.event(b.item("B").parsed()).model_copy(update={"data": {"key": "B"}})
    async with running(create_app("insights", settings)):
        await publish(settings, good[0], broken, good[1])
    report = await rebuild(settings)
    assert (report.applied, report.failed) == (2, 1)
    async with running(create_app("insights", settings)) as client:
        answer = await client.get("/v1/signals/launches/L1", headers=auth(settings, workspace))
    assert answer.status_code == 200
