"""A token never reaches another workspace's rows; row-level security is the second wall."""

from __future__ import annotations

import time

import asyncpg
import jwt

from prodops.runtime.settings import Settings
from support import auth, create_app, running


async def test_workspace_a_cannot_read_or_list_workspace_b_feedback(
    settings: Settings, workspace: str
) -> None:
    other = f"b-{workspace}"[:63]
    async with running(create_app("feedback", settings)) as client:
        mine = await client.post(
            "/v1/feedback", headers=auth(settings, workspace), json={"title": "Mine"}
        )
        assert mine.status_code == 201
        feedback_id = mine.json()["id"]
        theirs = auth(settings, other)
        hidden = await client.get(f"/v1/feedback/{feedback_id}", headers=theirs)
        assert hidden.status_code == 404
        assert hidden.headers["content-type"] == "application/problem+json"
        listed = await client.get("/v1/feedback", headers=theirs)
        assert listed.json()["items"] == []
        own = await client.get("/v1/feedback", headers=auth(settings, workspace))
        assert [f["id"] for f in own.json()["items"]] == [feedback_id]


async def test_row_level_security_hides_other_workspaces_even_without_a_where_clause(
    settings: Settings, workspace: str
) -> None:
    async with running(create_app("feedback", settings)) as client:
        answer = await client.post(
            "/v1/feedback", headers=auth(settings, workspace), json={"title": "Secret roadmap wish"}
        )
        assert answer.status_code == 201
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('prodops.workspace', 'nobody', true)")
            await conn.execute(f"SET LOCAL ROLE {settings.app_role}")
            visible = await conn.fetchval("SELECT count(*) FROM feedback.feedback_item")
            outbox = await conn.fetchval("SELECT count(*) FROM feedback.outbox")
        assert (visible, outbox) == (0, 0)
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {settings.app_role}")
            unset = await conn.fetchval("SELECT count(*) FROM feedback.feedback_item")
        assert unset == 0
    finally:
        await conn.close()


async def test_missing_expired_and_badly_signed_tokens_are_401_and_missing_scope_403(
    settings: Settings, workspace: str
) -> None:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    now = int(time.time())
    expired = jwt.encode({"ws": workspace, "scope": "feedback:read", "exp": now - 600}, secret)
    forged = jwt.encode(
        {"ws": workspace, "scope": "feedback:read", "exp": now + 600},
        "another-secret-of-sufficient-length-0123456789",
    )
    async with running(create_app("feedback", settings)) as client:
        for headers in (
            {},
            {"Authorization": f"Bearer {expired}"},
            {"Authorization": f"Bearer {forged}"},
            {"Authorization": "Basic abc"},
        ):
            answer = await client.get("/v1/feedback", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert secret not in answer.text
        read_only = auth(settings, workspace, "feedback:read")
        denied = await client.post("/v1/feedback", headers=read_only, json={"title": "x"})
        assert denied.status_code == 403
        assert denied.json()["status"] == 403
