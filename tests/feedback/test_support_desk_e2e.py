"""A support desk's signed webhook, end to end: source registry, feedback item, insights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson

from prodops.contract import ItemUpserted, make_event, new_id, utcnow
from prodops.runtime.settings import Settings
from signing import zendesk_delivery
from support import auth, create_app, eventually, publish, running, summary

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks"


async def listed(client: httpx.AsyncClient, headers: dict[str, str], query: str) -> list[Any]:
    answer = await client.get(f"/v1/feedback?{query}", headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def test_a_zendesk_ticket_becomes_feedback_once_and_insights_counts_it(
    settings: Settings, workspace: str
) -> None:
    ticket = orjson.loads((FIXTURES / "zendesk" / "dust.ticket_created.example.json").read_bytes())
    ticket["detail"]["tags"] = ["mobile", "roadmap-ck-41"]
    admin, reader = auth(settings, workspace, "admin"), auth(settings, workspace, "feedback:read")
    async with (
        running(create_app("feedback", settings)) as feedback,
        running(create_app("insights", settings)) as insights,
    ):
        created = await feedback.post(
            "/v1/sources", headers=admin, json={"provider": "zendesk", "name": "Zendesk"}
        )
        source = created.json()
        body, headers = zendesk_delivery(source["secret"], ticket)

        forged = await feedback.post(source["webhook_url"], content=body + b" ", headers=headers)
        assert forged.status_code == 401
        waiting = headers | {"Prefer": "wait=10"}  # answer with the outcome of normalising it
        first = await feedback.post(source["webhook_url"], content=body, headers=waiting)
        again = await feedback.post(source["webhook_url"], content=body, headers=headers)
        assert (first.status_code, first.json()["status"]) == (202, "processed")
        assert (again.status_code, again.json()["status"]) == (200, "duplicate")

        [item] = await listed(feedback, reader, f"source={source['id']}")
        assert item["title"] == "Cannot login to mobile app"
        assert item["priority"] == "high"
        assert item["source"]["provider"] == "zendesk"
        assert item["source"]["external_id"] == "5158"
        assert item["account_external_id"] == "8447346622462"
        assert item["item_keys"] == []  # CK-41 is not known yet: the tag waits

        roadmap_item = ItemUpserted(
            id=new_id(),
            key="CK-41",
            title="Mobile login",
            status="planned",
            version=1,
            updated_at=utcnow(),
        )
        await publish(settings, make_event(roadmap_item, service="roadmap", workspace=workspace))
        linked = await eventually(
            lambda: listed(feedback, reader, "item=CK-41"), lambda items: len(items) == 1
        )
        assert linked[0]["item_keys"] == ["CK-41"]
        # The feedback was counted when it arrived; the item only once its own event is applied.
        counts = await eventually(
            lambda: summary(insights, auth(settings, workspace)), lambda c: c["items"] == 1
        )
        assert counts["feedback"] == 1
