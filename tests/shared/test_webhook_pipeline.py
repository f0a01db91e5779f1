"""The shared inbound-webhook pipeline against the real database: sources, verify, dedup, replay."""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

import httpx
from fastapi import FastAPI

from prodops.http.pagination import encode_cursor
from prodops.runtime.db import Pool
from prodops.runtime.settings import Settings
from prodops.webhooks.endpoint import purge_deliveries
from support import assert_problem, auth
from webhook_kit import WAIT, Mapper, deliveries, register, settled, signed


async def test_signed_delivery_is_stored_once_and_normalised_once(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    assert source["webhook_url"] == f"/webhooks/signed/{source['id']}"
    body, headers = signed(source["secret"], {"id": "evt-1", "type": "ticket.created"})
    first = await client.post(source["webhook_url"], content=body, headers=headers)
    again = await client.post(source["webhook_url"], content=body, headers=headers)
    assert (first.status_code, first.json()["status"]) == (202, "received")
    assert (again.status_code, again.json()) == (200, {"id": None, "status": "duplicate"})
    admin = auth(settings, workspace, "admin")
    view = await settled(client, admin, first.json()["id"])
    assert (view["status"], view["error"], view["delivery_key"]) == ("processed", None, "evt-1")
    assert view["processed_at"] is not None
    # The normaliser also takes what earlier tests' apps left stored: count this workspace's.
    assert [d.workspace for d in mapper.seen if d.workspace == workspace] == [workspace]
    assert await deliveries(pool, workspace) == 1


async def test_bad_signature_unknown_source_oversize_and_garbage_store_nothing(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    url = source["webhook_url"]
    body, headers = signed("not-the-secret", {"id": "evt-2", "type": "ticket.created"})
    forged = await client.post(url, content=body, headers=headers)
    assert_problem(forged, 401)
    assert source["secret"] not in forged.text
    tampered_body, good_headers = signed(source["secret"], {"id": "evt-3", "type": "t"})
    tampered = await client.post(url, content=tampered_body + b" ", headers=good_headers)
    assert tampered.status_code == 401
    unknown = await client.post(
        "/webhooks/signed/00000000-0000-7000-8000-000000000000", content=body, headers=headers
    )
    assert unknown.status_code == 404
    wrong_vendor = await client.post(url.replace("/signed/", "/zendesk/"), content=body)
    assert wrong_vendor.status_code == 404
    huge, huge_headers = signed(source["secret"], {"id": "evt-4", "type": "t", "x": "y" * 5000})
    assert (await client.post(url, content=huge, headers=huge_headers)).status_code == 413
    garbage = b"not json"
    signature = hmac.new(source["secret"].encode(), garbage, hashlib.sha256).hexdigest()
    bad = await client.post(url, content=garbage, headers={"X-Signature": signature})
    assert bad.status_code == 400
    assert await deliveries(pool, workspace) == 0
    assert [d for d in mapper.seen if d.workspace == workspace] == []


async def test_handshake_is_answered_without_storing(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    body, headers = signed(source["secret"], {"zen": "ping"})
    answer = await client.post(
        source["webhook_url"], content=body, headers={**headers, "X-Ping": "1"}
    )
    assert answer.json() == {"pong": True}
    assert await deliveries(pool, workspace) == 0


async def test_failed_mapping_is_kept_listed_and_replayed_after_a_fix(
    client: httpx.AsyncClient, settings: Settings, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    admin = auth(settings, workspace, "admin")
    mapper.broken = True
    body, headers = signed(source["secret"], {"id": "evt-5", "type": "ticket.created"})
    answer = await client.post(source["webhook_url"], content=body, headers=headers | WAIT)
    assert (answer.status_code, answer.json()["status"]) == (202, "failed")
    failed = (await client.get("/v1/deliveries?status=failed", headers=admin)).json()["items"]
    assert [d["delivery_key"] for d in failed] == ["evt-5"]
    assert "cannot map this payload" in failed[0]["error"]
    mapper.broken = False
    replayed = await client.post(f"/v1/deliveries/{failed[0]['id']}/replay", headers=admin)
    assert replayed.status_code == 200
    assert (replayed.json()["status"], replayed.json()["error"]) == ("processed", None)
    assert (await client.get("/v1/deliveries?status=failed", headers=admin)).json()["items"] == []
    body, headers = signed(source["secret"], {"id": "evt-6", "type": "unknown"})
    ignored = await client.post(source["webhook_url"], content=body, headers=headers | WAIT)
    assert ignored.json()["status"] == "ignored"


async def test_secrets_are_shown_once_encrypted_at_rest_and_rotate_with_grace(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    admin = auth(settings, workspace, "admin")
    listed = (await client.get("/v1/sources", headers=admin)).json()["items"]
    fetched = (await client.get(f"/v1/sources/{source['id']}", headers=admin)).json()
    assert "secret" not in listed[0]
    assert "secret" not in fetched
    stored = await pool.fetchval("SELECT secret FROM webhook_source WHERE id = $1", source["id"])
    assert source["secret"].encode() not in stored
    rotated = (await client.post(f"/v1/sources/{source['id']}/rotate", headers=admin)).json()
    assert rotated["secret"] != source["secret"]
    for n, secret in enumerate([source["secret"], rotated["secret"]]):
        body, headers = signed(secret, {"id": f"rot-{n}", "type": "t"})
        answer = await client.post(source["webhook_url"], content=body, headers=headers)
        assert answer.status_code == 202, answer.text
    await pool.execute(
        "UPDATE webhook_source SET previous_secret_expires_at = now() WHERE id = $1", source["id"]
    )
    app.state.webhook_sources.forget(UUID(source["id"]))  # as if the cache entry had expired
    body, headers = signed(source["secret"], {"id": "rot-late", "type": "t"})
    assert (
        await client.post(source["webhook_url"], content=body, headers=headers)
    ).status_code == 401
    deleted = await client.delete(f"/v1/sources/{source['id']}", headers=admin)
    assert deleted.status_code == 204
    body, headers = signed(rotated["secret"], {"id": "after-delete", "type": "t"})
    assert (
        await client.post(source["webhook_url"], content=body, headers=headers)
    ).status_code == 404


async def test_sources_and_deliveries_of_another_workspace_are_out_of_reach(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    body, headers = signed(source["secret"], {"id": "evt-7", "type": "t"})
    await client.post(source["webhook_url"], content=body, headers=headers)
    mine = (await client.get("/v1/deliveries", headers=auth(settings, workspace, "admin"))).json()
    other = auth(settings, f"b-{workspace}"[:60], "admin")
    assert (await client.get(f"/v1/sources/{source['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/sources", headers=other)).json()["items"] == []
    assert (await client.get("/v1/deliveries", headers=other)).json()["items"] == []
    replay = await client.post(f"/v1/deliveries/{mine['items'][0]['id']}/replay", headers=other)
    assert replay.status_code == 404
    rotate = await client.post(f"/v1/sources/{source['id']}/rotate", headers=other)
    assert rotate.status_code == 404
    assert (await client.delete(f"/v1/sources/{source['id']}", headers=other)).status_code == 404
    no_admin = auth(settings, workspace, "feedback:write")
    assert (await client.get("/v1/sources", headers=no_admin)).status_code == 403
    unknown_vendor = await client.post(
        "/v1/sources",
        headers=auth(settings, workspace, "admin"),
        json={"provider": "myspace", "name": "x"},
    )
    assert unknown_vendor.status_code == 422


async def test_a_forged_cursor_is_a_bad_request_not_a_crash(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    admin = auth(settings, workspace, "admin")
    for forged in (["not-a-date", "x"], ["2026-01-01T00:00:00+00:00"], [1, 2, 3]):
        answer = await client.get(f"/v1/sources?cursor={encode_cursor(forged)}", headers=admin)
        assert answer.status_code == 400, forged
        assert answer.headers["content-type"] == "application/problem+json"


async def test_sources_page_through_with_opaque_cursors(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    created = [(await register(client, settings, workspace))["id"] for _ in range(5)]
    admin = auth(settings, workspace, "admin")
    seen: list[str] = []
    url = "/v1/sources?limit=2"
    while True:
        page = (await client.get(url, headers=admin)).json()
        seen += [s["id"] for s in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/v1/sources?limit=2&cursor={page['next_cursor']}"
    assert seen == list(reversed(created))


async def test_purge_keeps_failed_and_recent_deliveries(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    for key, broken in (("old-ok", False), ("old-failed", True), ("new-ok", False)):
        mapper.broken = broken
        body, headers = signed(source["secret"], {"id": key, "type": "t"})
        answer = await client.post(source["webhook_url"], content=body, headers=headers | WAIT)
        assert answer.json()["status"] == ("failed" if broken else "processed")
    await pool.execute(
        "UPDATE webhook_delivery SET received_at = now() - interval '200 hours' "
        "WHERE workspace = $1 AND delivery_key LIKE 'old-%'",
        workspace,
    )
    assert await purge_deliveries(pool, older_than_hours=168) >= 1
    left = await pool.fetch(
        "SELECT delivery_key FROM webhook_delivery WHERE workspace = $1 ORDER BY 1", workspace
    )
    assert [r["delivery_key"] for r in left] == ["new-ok", "old-failed"]
