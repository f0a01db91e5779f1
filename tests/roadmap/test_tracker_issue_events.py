"""`tracker_issue.upserted` carries the tracker's facts; events from before still replay.

Roadmap used to publish its own `blocker` verdict. Insights decides that under the workspace's
readiness policy, so the field is gone; events already in the stream still carry it, and the
live consumer and `prodops insights rebuild` must read them (the verdict ignored).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from prodops.contract import Event, TrackerIssueUpserted, envelope_model
from prodops.runtime.settings import Settings
from signal_events import Builder
from support import auth, create_app, eventually, publish, run_cli, running, signal_of


def _published_before(event: Event, *, blocker: bool) -> Event:
    """The event as roadmap published it while it still sent its verdict."""
    return event.model_copy(update={"data": {**event.data, "blocker": blocker}})


def test_an_old_event_with_a_blocker_verdict_is_read_without_it() -> None:
    old = _published_before(Builder("acme").issue("acme/shop#1", labels=["blocker"]), blocker=True)
    body = old.to_bytes()

    data = Event.from_bytes(body).parsed()
    typed: Any = envelope_model(TrackerIssueUpserted).model_validate_json(body)

    assert isinstance(data, TrackerIssueUpserted)
    assert data == typed.data
    assert data.labels == ["blocker"]
    assert "blocker" not in data.model_dump()
    assert "blocker" not in TrackerIssueUpserted.model_fields


def test_any_other_unknown_field_is_still_refused() -> None:
    event = Builder("acme").issue("acme/shop#1")
    with pytest.raises(ValidationError):
        TrackerIssueUpserted.model_validate({**event.data, "blocking": True})


async def test_the_consumer_and_the_rebuild_read_old_events_and_the_policy_decides(
    settings: Settings, workspace: str
) -> None:
    b = Builder(workspace)
    headers = auth(settings, workspace, "insights:read")
    events = [
        b.item("A"),
        b.launch("L1", items=("A",)),
        # Labelled `blocker`: the default policy's blocker, whatever the old verdict said.
        _published_before(
            b.issue("acme/shop#1", item_keys=["A"], labels=["blocker"]), blocker=False
        ),
        # Roadmap's old verdict said blocker; the policy (no blocker label, priority low) not.
        _published_before(b.issue("acme/shop#2", item_keys=["A"], priority="low"), blocker=True),
    ]

    async def launch(client: Any) -> Any:
        return await signal_of(client, "/v1/signals/launches/L1", headers)

    async with running(create_app("insights", settings)) as client:
        await publish(settings, *events)
        live = await eventually(
            lambda: launch(client),
            lambda s: s is not None and s["details"]["total_issues"] == 2,
        )
    blocked = [r for r in live["reasons"] if r["code"] == "blocked_by_issue"]
    assert live["status"] == "blocked"
    assert [r["evidence"] for r in blocked] == [[b.id_of("issue:acme/shop#1")]]

    out = await run_cli(settings, "insights", "rebuild")
    assert f"{len(events)} applied" in out
    assert out.rstrip().endswith("0 failed")
    async with running(create_app("insights", settings)) as client:
        rebuilt = await launch(client)
    assert (rebuilt["status"], rebuilt["reasons"]) == (live["status"], live["reasons"])
