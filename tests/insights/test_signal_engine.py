"""The signal engine end to end through the broker: events in, signals out."""

from __future__ import annotations

import math
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from insights import engine
from insights.projection.facts import Touch
from insights.signals import alignment as signals
from insights.signals import launches as launch_signals
from prodops.contract import utcnow
from prodops.runtime.db import Connection
from prodops.runtime.settings import Settings
from signal_events import Builder
from support import auth, create_app, eventually, publish, running, signal_of

ALIGNMENT = "/v1/signals/alignment"


async def test_strategic_alignment_follows_the_worked_example(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    headers = auth(settings, workspace, "insights:read")
    async with running(create_app("insights", settings)) as client:
        await publish(
            settings,
            b.objective("O1", 3),
            b.objective("O2", 1),
            b.item("A", effort=3, objectives=("O1",)),
            b.item("B", effort=1, objectives=("O2",), status="in_progress"),
            b.item("C", effort=2),
        )
        signal = await eventually(
            lambda: signal_of(client, ALIGNMENT, headers),
            lambda s: s is not None and s["components"]["aligned_effort_share"] == 66.7,
        )
        assert signal["strategic"] == 66.7
        assert signal["components"]["allocation_fit"] == 100.0
        await publish(settings, b.item("B", effort=1, objectives=("O1",), status="in_progress"))
        signal = await eventually(
            lambda: signal_of(client, ALIGNMENT, headers),
            lambda s: s is not None and s["strategic"] == 50.0,
        )
        history = await client.get("/v1/signals/alignment/history?limit=1", headers=headers)
        newest = history.json()
        assert newest["items"][0]["value"]["strategic"] == 50.0
        older = await client.get(
            "/v1/signals/alignment/history",
            headers=headers,
            params={"limit": 50, "cursor": newest["next_cursor"]},
        )
        assert 66.7 in [p["value"]["strategic"] for p in older.json()["items"]]
        codes = {r["code"]: r["evidence"] for r in signal["reasons"]}
        assert codes["objective_without_effort"] == [b.id_of("objective:O2")]
        assert codes["committed_without_objective"] == [b.id_of("item:C")]


async def test_a_blocker_blocks_the_launch_and_closing_it_unblocks(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    headers = auth(settings, workspace, "insights:read")
    async with running(create_app("insights", settings)) as client:
        launch = partial(signal_of, client, "/v1/signals/launches/L1", headers)
        await publish(
            settings,
            b.item("A"),
            b.launch("L1", items=("A",)),
            b.issue("acme/shop#1", item_keys=["A"], labels=["blocker"], blocker=True),
        )
        signal = await eventually(launch, lambda s: s is not None and s["status"] == "blocked")
        blocked = next(r for r in signal["reasons"] if r["code"] == "blocked_by_issue")
        assert blocked["evidence"] == [b.id_of("issue:acme/shop#1")]
        closed = b.issue(
            "acme/shop#1",
            item_keys=["A"],
            labels=["blocker"],
            state="closed",
            closed_at=signal_time(),
        )
        await publish(settings, closed)
        signal = await eventually(launch, lambda s: s is not None and s["status"] == "ready")
        assert signal["score"] == 100.0
        history = (await client.get("/v1/signals/launches/L1/history", headers=headers)).json()
        # Newest first. An earlier `ready` is there too when the launch and the issue came in
        # separate batches (the launch was ready before its blocker arrived).
        statuses = [p["value"]["status"] for p in history["items"]]
        assert statuses[:2] == ["ready", "blocked"]
        assert statuses[2:] in ([], ["ready"])


def signal_time() -> Any:
    from prodops.contract import utcnow

    return utcnow() - timedelta(hours=1)


async def _demand(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    return (await client.get("/v1/demand", headers=headers)).json()


def _item_demand(demand: Any, key: str) -> float:
    return next((i["demand"] for i in demand["items"] if i["key"] == key), 0.0)


async def test_customer_alignment_weighs_accounts_and_counts_each_account_once(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    headers = auth(settings, workspace, "insights:read")
    acme = 1 + math.log(2)  # ARR 10 000 -> account factor 1 + ln 2
    async with running(create_app("insights", settings)) as client:
        await publish(
            settings,
            b.account("acme", 10_000),
            b.item("A", status="idea"),
            b.item("B"),
            b.feedback("f1", account_external_id="acme", item_keys=["A"]),
            b.feedback("f2", priority="high", tags=["export"]),
        )
        demand = await eventually(
            lambda: _demand(client, headers), lambda d: _item_demand(d, "A") > 0
        )
        assert _item_demand(demand, "A") == pytest.approx(acme, abs=1e-3)
        assert demand["items"][0]["committed"] is False
        assert demand["tags"] == [
            {
                "tag": "export",
                "demand": pytest.approx(2, abs=1e-3),
                "unaddressed": pytest.approx(2, abs=1e-3),
                "feedback": 1,
            }
        ]
        signal = await eventually(
            lambda: signal_of(client, ALIGNMENT, headers), lambda s: s is not None
        )
        assert signal["customer"] == 0.0
        unaddressed = next(r for r in signal["reasons"] if r["code"] == "unaddressed_demand")
        assert unaddressed["evidence"] == [b.id_of("item:A")]

        await publish(settings, b.item("A", status="planned"))
        coverage = acme / (acme + 2)
        expected = round(100 * math.sqrt(coverage * 0.5), 1)
        signal = await eventually(
            lambda: signal_of(client, ALIGNMENT, headers),
            lambda s: s is not None and s["customer"] > 0,
        )
        assert signal["customer"] == expected
        assert signal["components"]["evidence_ratio"] == 50.0

        # A duplicate from the same account adds nothing; one from another account adds its own.
        await publish(settings, b.feedback("f3", account_external_id="acme", merged_into="f1"))
        await publish(settings, b.feedback("f4", account_external_id="beta", merged_into="f1"))
        demand = await eventually(
            lambda: _demand(client, headers),
            lambda d: _item_demand(d, "A") > acme + 0.5,
        )
        assert _item_demand(demand, "A") == pytest.approx(acme + 1, abs=1e-3)
        assert next(i for i in demand["items"] if i["key"] == "A")["feedback"] == 1


async def test_a_signal_that_cannot_be_refreshed_stays_and_the_others_refresh(
    settings: Settings, workspace: str, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    b = Builder(workspace)
    app = create_app("insights", settings)
    async with running(app) as client:
        headers = auth(settings, workspace, "insights:read")
        await publish(settings, b.launch("L1"), b.launch("L2"))
        await eventually(
            lambda: client.get("/v1/signals/launches", headers=headers),
            lambda answer: len(answer.json()["items"]) == 2,
        )
        real = launch_signals.refresh_launches

        async def broken_for_l1(conn: Connection, ctx: signals.Context, keys: list[str]) -> None:
            await real(conn, ctx, keys)  # its writes must be undone with it
            if "L1" in keys:
                raise RuntimeError("cannot compute L1")

        monkeypatch.setattr(engine, "refresh_launches", broken_for_l1)
        pool = app.state.pool
        await pool.execute(
            "UPDATE launch_fact SET name = 'Renamed ' || key WHERE workspace = $1", workspace
        )
        async with pool.acquire() as conn, conn.transaction():
            touch = Touch(launches={"L1", "L2"})
            await engine.refresh(conn, workspace, touch, emit=True, now=utcnow())
        names = dict(
            await pool.fetch(
                "SELECT launch_key, name FROM launch_signal WHERE workspace = $1", workspace
            )
        )
    assert names == {"L1": "Launch L1", "L2": "Renamed L2"}
    assert f"signal launch {workspace}/L1 could not be refreshed" in caplog.text
