"""PostgreSQL is the source of truth: a lost stream is refilled from the outbox."""

from __future__ import annotations

import nats

from prodops.contract import utcnow
from prodops.runtime.settings import Settings
from support import (
    create_app,
    eventually,
    run_cli,
    running,
    stream_messages,
    summary,
)


async def test_deleted_stream_is_refilled_by_outbox_republish_and_insights_converges(
    settings: Settings, headers: dict[str, str]
) -> None:
    started = utcnow()
    titles = ["Export to CSV", "Dark mode", "SSO"]
    async with running(create_app("feedback", settings)) as feedback:
        async with running(create_app("insights", settings)) as insights:
            for title in titles:
                answer = await feedback.post("/v1/feedback", headers=headers, json={"title": title})
                assert answer.status_code == 201
            before = await eventually(
                lambda: summary(insights, headers), lambda c: c["feedback"] == 3
            )

        nc = await nats.connect(settings.nats_url)
        await nc.jetstream().delete_stream(settings.stream_name)
        await nc.close()

        out = await run_cli(settings, "outbox", "republish", "--since", started.isoformat())
        assert "feedback: 3 events republished" in out
        assert await stream_messages(settings) == 3

        async with running(create_app("insights", settings)) as insights:
            after = await eventually(
                lambda: summary(insights, headers), lambda c: c["feedback"] == 3
            )
            answer = await feedback.post("/v1/feedback", headers=headers, json={"title": "API"})
            assert answer.status_code == 201
            await eventually(lambda: summary(insights, headers), lambda c: c["feedback"] == 4)
    assert after == before
