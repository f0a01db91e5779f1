"""`/v1/sources/{id}/api-access`: a GitLab source's API token, sealed and never shown."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import HttpUrl, SecretStr

from prodops.http.problems import ProblemError
from prodops.runtime.settings import Settings
from roadmap.source_access import ApiAccessIn, base_url_of
from support import auth

TOKEN = "glpat-never-shown-0123456789abcdef"


async def _source(
    client: httpx.AsyncClient, settings: Settings, workspace: str, provider: str = "gitlab"
) -> dict[str, Any]:
    body = {"provider": provider, "name": provider}
    answer = await client.post("/v1/sources", headers=auth(settings, workspace, "admin"), json=body)
    assert answer.status_code == 201, answer.text
    source: dict[str, Any] = answer.json()
    return source


async def _stored(settings: Settings, sql: str, *args: object) -> Any:
    conn = await asyncpg.connect(settings.database_url, server_settings={"search_path": "roadmap"})
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def test_api_token_is_sealed_at_rest_and_never_shown(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    source = await _source(client, settings, workspace)
    path = f"/v1/sources/{source['id']}/api-access"

    answers = [await client.put(path, headers=admin, json={"token": TOKEN})]
    answers += [
        await client.get(path, headers=admin),
        await client.get(f"/v1/sources/{source['id']}", headers=admin),
        await client.get("/v1/sources", headers=admin),
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    assert answers[1].json() == answers[0].json()
    assert answers[0].json() | {"updated_at": None} == {
        "source_id": source["id"],
        "base_url": "https://gitlab.com",
        "has_token": True,
        "updated_at": None,
    }
    assert all(TOKEN not in a.text for a in answers)
    sealed = await _stored(
        settings,
        "SELECT token FROM source_api_access WHERE source_id = $1",
        uuid.UUID(source["id"]),
    )
    assert TOKEN.encode() not in sealed
    assert Fernet(settings.secrets_key.get_secret_value()).decrypt(sealed) == TOKEN.encode()  # type: ignore[union-attr]


async def test_replacing_the_api_access_forgets_cached_milestone_titles(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    source = await _source(client, settings, workspace)
    path = f"/v1/sources/{source['id']}/api-access"
    await client.put(path, headers=admin, json={"token": TOKEN})
    source_id = uuid.UUID(source["id"])
    await _stored(
        settings,
        "INSERT INTO gitlab_milestone (workspace, source_id, milestone_id, title)"
        " VALUES ($1, $2, 7, 'LAUNCH-7')",
        workspace,
        source_id,
    )
    body = {"token": TOKEN + "-new", "base_url": "https://gitlab.example.com/"}

    answer = await client.put(path, headers=admin, json=body)

    assert answer.json()["base_url"] == "https://gitlab.example.com"
    count = "SELECT count(*) FROM gitlab_milestone WHERE source_id = $1"
    assert await _stored(settings, count, source_id) == 0


async def test_api_access_of_another_workspace_is_not_found(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await _source(client, settings, workspace)
    path = f"/v1/sources/{source['id']}/api-access"
    await client.put(path, headers=auth(settings, workspace, "admin"), json={"token": TOKEN})
    stranger = auth(settings, f"ws-{uuid.uuid4().hex[:10]}", "admin")

    answers = [
        await client.put(path, headers=stranger, json={"token": "glpat-hijack-000000"}),
        await client.get(path, headers=stranger),
        await client.delete(path, headers=stranger),
    ]

    assert [a.status_code for a in answers] == [404, 404, 404]
    kept = await client.get(path, headers=auth(settings, workspace, "admin"))
    assert kept.status_code == 200


async def test_api_access_is_refused_where_it_cannot_be_used(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    github = await _source(client, settings, workspace, "github")
    gitlab = await _source(client, settings, workspace)
    body = {"token": TOKEN}

    on_github = await client.put(f"/v1/sources/{github['id']}/api-access", headers=admin, json=body)
    unknown = await client.put(f"/v1/sources/{uuid.uuid4()}/api-access", headers=admin, json=body)
    path = f"/v1/sources/{gitlab['id']}/api-access"
    short = await client.put(path, headers=admin, json={"token": "glpat"})
    spaced = await client.put(path, headers=admin, json={"token": "glpat with spaces é"})
    not_a_url = await client.put(path, headers=admin, json={"token": TOKEN, "base_url": "nope"})
    reader = auth(settings, workspace, "roadmap:read", "roadmap:write")
    not_admin = await client.put(path, headers=reader, json=body)
    never_set = await client.get(path, headers=admin)

    assert (on_github.status_code, on_github.json()["detail"]) == (
        422,
        "github sources take no API token",
    )
    refused = [unknown, short, spaced, not_a_url]
    assert [answer.status_code for answer in refused] == [404, 422, 422, 422]
    assert "glpat" not in short.text + spaced.text
    assert [not_admin.status_code, never_set.status_code] == [403, 404]


def test_plain_http_gitlab_is_refused_in_production_only(settings: Settings) -> None:
    production = settings.model_copy(update={"env": "production"})
    body = ApiAccessIn(token=SecretStr(TOKEN), base_url=HttpUrl("http://gitlab.internal"))

    with pytest.raises(ProblemError, match="https"):
        base_url_of(body, production)
    assert base_url_of(body, settings) == "http://gitlab.internal"
