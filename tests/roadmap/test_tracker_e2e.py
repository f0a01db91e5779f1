"""A tracker's signed webhook through the real roadmap app: source, ping, issue, event."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from pathlib import Path
from typing import Any

import orjson

from prodops.settings import Settings
from support import auth, create_app, emitted, running

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "github"


def github(secret: str, event: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A delivery signed as GitHub signs (`sha256=` + hex HMAC-SHA256 of the body)."""
    body = orjson.dumps(payload)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


async def test_a_github_issue_reaches_the_roadmap_app_and_is_emitted_once(
    settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    opened = orjson.loads((FIXTURES / "issues.opened.json").read_bytes())
    opened["issue"]["labels"] = [{"name": "roadmap:CK-3"}, {"name": "P1"}]
    async with running(create_app("roadmap", settings)) as roadmap:
        source = (
            await roadmap.post(
                "/v1/sources", headers=admin, json={"provider": "github", "name": "GitHub"}
            )
        ).json()
        ping, ping_headers = github(source["secret"], "ping", {"zen": "Keep it simple."})
        pong = await roadmap.post(source["webhook_url"], content=ping, headers=ping_headers)
        assert pong.json() == {"status": "pong"}
        body, headers = github(source["secret"], "issues", opened)
        assert (
            await roadmap.post(source["webhook_url"], content=body, headers=headers)
        ).status_code == 202
        again = await roadmap.post(source["webhook_url"], content=body, headers=headers)
        assert again.json()["status"] == "duplicate"
        reader = auth(settings, workspace, "roadmap:read")
        issues = (await roadmap.get("/v1/tracker-issues?item=CK-3", headers=reader)).json()["items"]
    assert [(i["key"], i["priority"], i["state"]) for i in issues] == [
        (f"{opened['repository']['full_name']}#{opened['issue']['number']}", "high", "open")
    ]
    events = [t for t, _ in await emitted(settings, workspace, schema="roadmap")]
    assert events == ["tracker_issue.upserted"]
