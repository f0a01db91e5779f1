"""PostgreSQL is the source of truth: a lost stream is refilled from the outbox."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import nats

from prodops.events import utcnow
from prodops.settings import Settings
from support import auth, create_app, eventually, running, stream_messages, summary


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a `prodops` subprocess these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRODOPS_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        plain = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"PRODOPS_{name.upper()}"] = (
            json.dumps(plain) if isinstance(plain, tuple) else str(plain)
        )
    return env


async def test_deleted_stream_is_refilled_by_outbox_republish_and_insights_converges(
    settings: Settings, workspace: str
) -> None:
    headers = auth(settings, workspace)
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

        command = ["outbox", "republish", "--since", started.isoformat()]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "prodops",
            *command,
            env=settings_env(settings),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        assert "feedback: 3 events republished" in out.decode()
        assert await stream_messages(settings) == 3

        async with running(create_app("insights", settings)) as insights:
            after = await eventually(
                lambda: summary(insights, headers), lambda c: c["feedback"] == 3
            )
            answer = await feedback.post("/v1/feedback", headers=headers, json={"title": "API"})
            assert answer.status_code == 201
            await eventually(lambda: summary(insights, headers), lambda c: c["feedback"] == 4)
    assert after == before
