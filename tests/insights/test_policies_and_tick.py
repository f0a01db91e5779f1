"""Policies change every signal at once; the tick moves what changes with time alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from insights.signals.tick import tick
from prodops.contract import utcnow
from prodops.runtime.settings import Settings
from signal_events import Builder, days_ago
from support import auth, create_app, eventually, publish, running, signal_of


async def _launch(client: httpx.AsyncClient, headers: dict[str, str]) -> Any:
    return await signal_of(client, "/v1/signals/launches/L1", headers)


async def _demand(client: httpx.AsyncClient, read: dict[str, str]) -> list[Any]:
    items: list[Any] = (await client.get("/v1/demand", headers=read)).json()["items"]
    return items


async def test_readiness_policy_is_validated_versioned_and_applied_at_once(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    read, admin = auth(settings, workspace, "insights:read"), auth(settings, workspace, "admin")
    async with running(create_app("insights", settings)) as client:
        default = await client.get("/v1/policies/readiness", headers=read)
        assert default.status_code == 200
        assert default.headers["etag"] == '"0"'
        assert default.json()["policy"]["blocker_labels"] == ["blocker"]

        await publish(
            settings,
            b.item("A"),
            b.launch("L1", items=("A",)),
            b.issue("acme/shop#1", item_keys=["A"], labels=["showstopper"]),
        )
        await eventually(lambda: _launch(client, read), lambda s: s and s["status"] == "on_track")

        policy = default.json()["policy"] | {"blocker_labels": ["showstopper"]}
        refused = await client.put("/v1/policies/readiness", headers=read, json=policy)
        assert refused.status_code == 403
        bad = policy | {
            "weights": {"checklist": 0.5, "delivery": 0.5, "quality": 0.5, "schedule": 0}
        }
        invalid = await client.put("/v1/policies/readiness", headers=admin, json=bad)
        assert invalid.status_code == 422
        assert invalid.headers["content-type"] == "application/problem+json"
        unknown = await client.put("/v1/policies/readiness", headers=admin, json=policy | {"x": 1})
        assert unknown.status_code == 422
        stale = await client.put(
            "/v1/policies/readiness", headers=admin | {"If-Match": '"7"'}, json=policy
        )
        assert stale.status_code == 412
        assert (await client.get("/v1/policies/readiness", headers=read)).json()["version"] == 0

        saved = await client.put(
            "/v1/policies/readiness", headers=admin | {"If-Match": '"0"'}, json=policy
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["version"] == 1
        assert saved.headers["etag"] == '"1"'
        # No event arrived: the policy change itself re-evaluated the launch.
        signal = await _launch(client, read)
        assert signal["status"] == "blocked"

        other = auth(settings, f"{workspace}-other", "insights:read")
        assert (await client.get("/v1/policies/readiness", headers=other)).json()["version"] == 0


async def test_feedback_weight_policy_rescales_demand(settings: Settings, workspace: str) -> None:
    b = Builder(workspace)
    read, admin = auth(settings, workspace, "insights:read"), auth(settings, workspace, "admin")
    async with running(create_app("insights", settings)) as client:
        await publish(settings, b.item("A", status="idea"), b.feedback("f1", item_keys=["A"]))

        async def demand() -> float:
            items = (await client.get("/v1/demand", headers=read)).json()["items"]
            return float(items[0]["demand"]) if items else 0.0

        assert abs(await eventually(demand, lambda d: d > 0) - 1) < 1e-3
        policy = (await client.get("/v1/policies/feedback-weight", headers=read)).json()["policy"]
        policy["priority_factors"]["normal"] = 3
        saved = await client.put("/v1/policies/feedback-weight", headers=admin, json=policy)
        assert saved.status_code == 200, saved.text
        assert abs(await demand() - 3) < 1e-3
        policy["window_days"] = -1
        invalid = await client.put("/v1/policies/feedback-weight", headers=admin, json=policy)
        assert invalid.status_code == 422
        assert abs(await demand() - 3) < 1e-3


async def test_the_tick_turns_a_stalled_launch_at_risk_and_ages_out_feedback(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    read = auth(settings, workspace, "insights:read")
    app = create_app("insights", settings)
    async with running(app) as client:
        target = (utcnow() + timedelta(days=20)).date()
        await publish(
            settings,
            b.item("A", status="idea"),
            b.launch("L1", items=("A",), target=target),
            b.issue("acme/shop#1", item_keys=["A"]),
            b.feedback("old", item_keys=["A"], created_at=days_ago(179)),
        )
        # The issue may come in a later batch than the launch: wait until the signal has it.
        signal = await eventually(
            lambda: _launch(client, read),
            lambda s: s is not None and s["details"]["total_issues"] == 1,
        )
        assert signal["status"] == "on_track"
        # So may the feedback.
        assert await eventually(lambda: _demand(client, read), bool)

        assert await tick(app.state.pool, now=utcnow() + timedelta(days=7)) >= 1
        signal = await _launch(client, read)
        assert signal["status"] == "at_risk"
        assert "no_recent_throughput" in {r["code"] for r in signal["reasons"]}
        assert await _demand(client, read) == []


async def test_signals_are_confined_to_the_workspace_and_unknown_ones_are_404(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    mine, theirs = auth(settings, workspace, "insights:read"), auth(settings, f"{workspace}-x")
    async with running(create_app("insights", settings)) as client:
        await publish(settings, b.item("A"), b.launch("L1", items=("A",)))
        await eventually(lambda: _launch(client, mine), lambda s: s is not None)
        assert await _launch(client, theirs) is None
        for path in (
            "/v1/signals/launches/L1",
            "/v1/signals/alignment",
            "/v1/signals/alignment?area=x",
        ):
            answer = await client.get(path, headers=theirs)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "application/problem+json"
        assert (await client.get("/v1/signals/launches", headers=theirs)).json()["items"] == []
        assert (await client.get("/v1/demand", headers=theirs)).json() == {"items": [], "tags": []}
        no_scope = auth(settings, workspace, "roadmap:read")
        assert (await client.get("/v1/signals/launches/L1", headers=no_scope)).status_code == 403
        bad_cursor = await client.get("/v1/signals/launches?cursor=%%%", headers=mine)
        assert bad_cursor.status_code == 400
