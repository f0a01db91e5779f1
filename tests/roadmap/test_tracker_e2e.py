"""A tracker's signed webhook through the real roadmap app: source, ping, issue, event."""

from __future__ import annotations

from pathlib import Path

import orjson

from prodops.runtime.settings import Settings
from signing import github_delivery
from support import auth, create_app, emitted, running

FIXTURES = Path(__file__).parents[1] / "fixtures" / "webhooks" / "github"


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
        ping, ping_headers = github_delivery(source["secret"], "ping", {"zen": "Keep it simple."})
        pong = await roadmap.post(source["webhook_url"], content=ping, headers=ping_headers)
        assert pong.json() == {"status": "pong"}
        body, headers = github_delivery(source["secret"], "issues", opened)
        # Normalised after the answer: `Prefer: wait` answers with the outcome.
        first = await roadmap.post(
            source["webhook_url"], content=body, headers={**headers, "Prefer": "wait=5"}
        )
        assert (first.status_code, first.json()["status"]) == (202, "processed")
        again = await roadmap.post(source["webhook_url"], content=body, headers=headers)
        assert again.json()["status"] == "duplicate"
        reader = auth(settings, workspace, "roadmap:read")
        issues = (await roadmap.get("/v1/tracker-issues?item=CK-3", headers=reader)).json()["items"]
    assert [(i["key"], i["priority"], i["state"]) for i in issues] == [
        (f"{opened['repository']['full_name']}#{opened['issue']['number']}", "high", "open")
    ]
    events = [t for t, _ in await emitted(settings, workspace, schema="roadmap")]
    assert events == ["tracker_issue.upserted"]
