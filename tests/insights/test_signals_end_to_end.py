"""The three scenarios of the insights issue, through every service's HTTP API and the broker."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from prodops.contract import LaunchReadinessChanged, utcnow
from prodops.runtime.settings import Settings
from receiver import webhook_receiver
from signing import github_delivery, zendesk_delivery
from support import auth, create_app, emitted, eventually, running, signal_of

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"
GITHUB_ISSUE = orjson.loads((FIXTURES / "github" / "issues.opened.json").read_bytes())
ZENDESK_TICKET = orjson.loads(
    (FIXTURES / "zendesk" / "dust.ticket_created.example.json").read_bytes()
)


def local(settings: Settings) -> Settings:
    """The test's settings, letting insights deliver to the local receiver."""
    values = {
        **settings.model_dump(),
        "outbound_allow_private_urls": True,
        "outbound_poll_interval_seconds": 0.1,
    }
    return Settings.model_validate(values)


async def _created(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **body: Any
) -> Any:
    answer = await client.post(path, headers=headers, json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def github_issue(
    number: int, labels: list[str], milestone: str, *, closed: bool = False
) -> dict[str, Any]:
    """GitHub's real `issues` payload, renumbered, relabelled and milestoned."""
    payload: dict[str, Any] = copy.deepcopy(GITHUB_ISSUE)
    issue = payload["issue"]
    issue.update(id=900_000 + number, number=number, labels=[{"name": n} for n in labels])
    issue["milestone"]["title"] = milestone
    if closed:
        payload["action"] = "closed"
        issue.update(state="closed", closed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return payload


async def test_a_blocker_on_a_launch_reaches_a_subscriber_once_per_change(
    settings: Settings, workspace: str
) -> None:
    settings = local(settings)
    admin, writer = auth(settings, workspace, "admin"), auth(settings, workspace, "roadmap:write")
    reader = auth(settings, workspace, "insights:read")
    target = (utcnow() + timedelta(days=30)).date().isoformat()
    async with (
        webhook_receiver() as receiver,
        running(create_app("roadmap", settings)) as roadmap,
        running(create_app("insights", settings)) as insights,
    ):
        subscription = await _created(
            insights,
            "/v1/subscriptions",
            admin,
            url=receiver.url,
            event_types=[LaunchReadinessChanged.TYPE],
        )
        launch = await _created(
            roadmap, "/v1/launches", writer, key="SPRING", name="Spring", target_date=target
        )
        items = [
            await _created(
                roadmap, "/v1/items", writer, title=t, status="in_progress", launch_id=launch["id"]
            )
            for t in ("Export", "Import")
        ]
        source = await _created(roadmap, "/v1/sources", admin, provider="github", name="GitHub")

        async def deliver(payload: dict[str, Any]) -> None:
            body, headers = github_delivery(source["secret"], "issues", payload)
            answer = await roadmap.post(source["webhook_url"], content=body, headers=headers)
            assert answer.status_code == 202, answer.text

        await deliver(github_issue(1, [f"roadmap:{items[0]['key']}"], "SPRING"))
        await deliver(github_issue(2, [f"roadmap:{items[1]['key']}", "blocker"], "SPRING"))
        signal = partial(signal_of, insights, "/v1/signals/launches/SPRING", reader)
        blocked = await eventually(signal, lambda s: s is not None and s["status"] == "blocked")
        issues = (
            await roadmap.get(
                "/v1/tracker-issues", headers=writer | reader | auth(settings, workspace)
            )
        ).json()["items"]
        blocker_id = next(i["id"] for i in issues if i["key"].endswith("#2"))
        reason = next(r for r in blocked["reasons"] if r["code"] == "blocked_by_issue")
        assert reason["evidence"] == [blocker_id]

        # Closed: nothing blocks, one issue of two is done and the pace meets the target.
        await deliver(
            github_issue(2, [f"roadmap:{items[1]['key']}", "blocker"], "SPRING", closed=True)
        )
        after = await eventually(signal, lambda s: s is not None and s["status"] != "blocked")
        assert after["status"] == "on_track"
        assert after["components"]["delivery"] == 50.0

        changes = [
            e
            for t, e in await emitted(settings, workspace, "insights")
            if t == "signal.launch_readiness.changed"
        ]
        received = await receiver.wait_for(len(changes))
        await _settle(insights, admin, subscription["id"])
    assert len(received) == len(changes)
    assert len({r.webhook_id for r in received}) == len(received), "each change arrives once"
    for request in received:
        receiver.verify(subscription["secret"], request)
    statuses = [r.json()["data"]["status"]["to"] for r in received]
    assert [s["status"]["to"] for s in changes] == statuses
    assert "blocked" in statuses
    assert statuses[-1] == "on_track"


async def _settle(client: httpx.AsyncClient, headers: dict[str, str], subscription: str) -> None:
    """Wait until no delivery of the subscription is pending, so none is sent twice at stop."""

    async def pending() -> int:
        page = (
            await client.get(
                f"/v1/subscriptions/{subscription}/deliveries?status=pending", headers=headers
            )
        ).json()
        return len(page["items"])

    await eventually(pending, lambda n: n == 0)


def zendesk_ticket(number: int, organization: str, tags: list[str]) -> dict[str, Any]:
    """Zendesk's real ticket-created event, for another ticket, account and tags, made today."""
    payload: dict[str, Any] = copy.deepcopy(ZENDESK_TICKET)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload["id"] = f"evt-{number}-{organization}"
    payload["detail"].update(
        id=str(number), organization_id=organization, tags=tags, created_at=now, updated_at=now
    )
    return payload


async def test_tickets_from_paying_accounts_raise_demand_and_committing_raises_alignment(
    settings: Settings, workspace: str
) -> None:
    admin, everything = auth(settings, workspace, "admin"), auth(settings, workspace)
    async with (
        running(create_app("feedback", settings)) as feedback,
        running(create_app("roadmap", settings)) as roadmap,
        running(create_app("insights", settings)) as insights,
    ):
        wanted = await _created(roadmap, "/v1/items", everything, title="SSO", status="idea")
        busy = await _created(roadmap, "/v1/items", everything, title="Theme", status="planned")
        for account, arr in (("org-small", 10_000), ("org-big", 90_000)):
            answer = await feedback.put(
                f"/v1/accounts/{account}", headers=everything, json={"arr": arr}
            )
            assert answer.status_code == 201, answer.text
        source = await _created(feedback, "/v1/sources", admin, provider="zendesk", name="Zendesk")
        tag = f"roadmap-{wanted['key'].lower()}"
        for number, account, tags in (
            (1, "org-small", [tag]),
            (2, "org-big", [tag]),
            (3, "org-big", ["pricing"]),
        ):
            body, headers = zendesk_delivery(
                source["secret"], zendesk_ticket(number, account, tags)
            )
            answer = await feedback.post(source["webhook_url"], content=body, headers=headers)
            assert answer.status_code == 202, answer.text

        # The fixture's tickets are HIGH priority (factor 2); accounts weigh 1 + ln(1 + ARR/10 000).
        small, big = 2 * (1 + math.log(2)), 2 * (1 + math.log(10))

        async def demand_of(key: str) -> float:
            items = (await insights.get("/v1/demand", headers=everything)).json()["items"]
            return next((float(i["demand"]) for i in items if i["key"] == key), 0.0)

        demand = await eventually(
            lambda: demand_of(wanted["key"]), lambda d: d > small + big - 0.01
        )
        assert math.isclose(demand, small + big, abs_tol=0.01)

        async def customer() -> float:
            answer = await insights.get("/v1/signals/alignment", headers=everything)
            return float(answer.json()["customer"]) if answer.status_code == 200 else -1.0

        before = await eventually(customer, lambda c: c >= 0)
        assert before == 0.0  # nothing customers ask for is committed
        committed = await roadmap.patch(
            f"/v1/items/{wanted['key']}", headers=everything, json={"status": "planned"}
        )
        assert committed.status_code == 200, committed.text
        # coverage: linked demand over all demand; evidence: 1 of 2 committed effort has feedback.
        coverage = (small + big) / (small + big + big)
        expected = round(100 * math.sqrt(coverage * 0.5), 1)
        after = await eventually(customer, lambda c: c > 0)
        assert after == expected
        assert busy["key"] != wanted["key"]


async def test_objectives_and_split_items_give_the_strategic_alignment_by_hand(
    settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace)
    async with (
        running(create_app("roadmap", settings)) as roadmap,
        running(create_app("insights", settings)) as insights,
    ):
        o1, o2, o3 = [
            (await _created(roadmap, "/v1/objectives", headers, name=n, weight=w))["id"]
            for n, w in (("Grow", 2), ("Retain", 1), ("Comply", 1))
        ]
        for title, effort, objectives, status in (
            ("X", 4, [o1, o2], "in_progress"),  # 2 to Grow, 2 to Retain
            ("Y", 2, [o3], "planned"),
            ("Z", 2, [], "planned"),
            ("W", 3, [o1], "idea"),  # not committed: counts nowhere
        ):
            await _created(
                roadmap,
                "/v1/items",
                headers,
                title=title,
                effort=effort,
                objective_ids=objectives,
                status=status,
            )

        # aligned share 6/8; effort shares 1/3 each against weights 1/2, 1/4, 1/4:
        # fit = 1 - (1/6 + 1/12 + 1/12) / 2 = 5/6; strategic = 3/4 * 5/6 = 62.5.
        strategic = partial(signal_of, insights, "/v1/signals/alignment", headers)
        signal = await eventually(strategic, lambda s: s is not None and s["strategic"] == 62.5)
    assert signal["components"]["aligned_effort_share"] == 75.0
    assert signal["components"]["allocation_fit"] == 83.3
