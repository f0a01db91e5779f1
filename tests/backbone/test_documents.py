"""What every service publishes about itself: OpenAPI, AsyncAPI, health and metrics."""

from __future__ import annotations

import pytest

from prodops.runtime.settings import Settings
from support import create_app, running

EMITS = {
    "feedback": ["prodops.feedback.received.v1", "prodops.account.upserted.v1"],
    "roadmap": ["prodops.item.upserted.v1", "prodops.tracker_issue.upserted.v1"],
    "insights": ["prodops.signal.launch_readiness.changed.v1"],
}


@pytest.mark.parametrize("service", ["feedback", "roadmap", "insights"])
async def test_service_documents_its_http_api_and_its_events(
    settings: Settings, service: str
) -> None:
    async with running(create_app(service, settings)) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "checks": {}}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
        metrics = await client.get("/metrics")
        assert "prodops_http_requests_total" in metrics.text

        openapi = (await client.get("/openapi.json")).json()
        operations = [
            (path, op)
            for path, item in openapi["paths"].items()
            if path.startswith("/v1/")
            for op in item.values()
        ]
        assert operations
        for path, op in operations:
            assert op.get("security"), f"{path} is not documented as needing a token"
            for status in ("401", "403", "422"):
                content = op["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (path, status)
        posts = [item["post"] for path, item in openapi["paths"].items() if "post" in item]
        for post in posts:
            headers = {p["name"] for p in post.get("parameters", []) if p["in"] == "header"}
            assert ("Idempotency-Key" in headers) == bool(post.get("security")), post["summary"]

        asyncapi = (await client.get("/asyncapi.json")).json()
        assert asyncapi["asyncapi"].startswith("3.")
        text = str(asyncapi)
        for event_type in EMITS[service]:
            assert event_type in text, f"{service} does not document {event_type}"
