"""Deliveries stored by group commit and normalised after, in order: the intake's guarantees."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from prodops.http.problems import ProblemError
from prodops.runtime.db import Pool, create_pool
from prodops.runtime.settings import Settings
from prodops.webhooks import intake as intake_module
from prodops.webhooks import writer as intake_writer
from prodops.webhooks.body_cache import BodyCache
from prodops.webhooks.endpoint import wait_preference
from prodops.webhooks.intake import Intake
from prodops.webhooks.writer import NewDelivery
from support import auth
from webhook_kit import MAPPED, WAIT, Mapper, register, settled, signed, webhook_app


@pytest.fixture(autouse=True)
async def _mapped_table(pool: Pool) -> None:
    await pool.execute(MAPPED)


@pytest.fixture
def mapper() -> Mapper:
    return Mapper(record=True)


async def _post(client: httpx.AsyncClient, url: str, secret: str, key: str, kind: str = "t") -> Any:
    body, headers = signed(secret, {"id": key, "type": kind})
    return await client.post(url, content=body, headers=headers)


async def test_concurrent_deliveries_are_stored_together_each_once(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    url, secret = source["webhook_url"], source["secret"]
    keys = [f"c-{n}" for n in range(60)] + ["same"] * 10
    answers = await asyncio.gather(*(_post(client, url, secret, key) for key in keys))
    statuses = [(a.status_code, a.json()["status"]) for a in answers]
    assert statuses.count((202, "received")) == 61
    assert statuses.count((200, "duplicate")) == 9
    admin = auth(settings, workspace, "admin")
    for answer in answers:
        if answer.status_code == 202:
            assert (await settled(client, admin, answer.json()["id"]))["status"] == "processed"
    stored = await pool.fetch(
        "SELECT delivery_key FROM webhook_delivery WHERE workspace = $1", workspace
    )
    assert sorted(r["delivery_key"] for r in stored) == sorted(set(keys))
    mine = [d.body for d in mapper.seen if d.workspace == workspace]
    assert len(mine) == len(set(mine)) == 61


async def test_a_delivery_that_fails_to_map_fails_alone_and_its_writes_are_undone(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    url, secret = source["webhook_url"], source["secret"]
    kinds = ["t"] * 10 + ["poison"] + ["t"] * 10
    answers = await asyncio.gather(
        *(_post(client, url, secret, f"p-{n}", kind) for n, kind in enumerate(kinds))
    )
    admin = auth(settings, workspace, "admin")
    views = [await settled(client, admin, a.json()["id"]) for a in answers]
    assert [v["status"] for v in views] == [
        "failed" if k == "poison" else "processed" for k in kinds
    ]
    assert "cannot map this payload" in views[10]["error"]
    mapped = {r["id"] for r in await pool.fetch("SELECT id FROM webhook_kit_mapped")}
    processed = {uuid.UUID(v["id"]) for v in views if v["status"] == "processed"}
    assert processed <= mapped
    assert uuid.UUID(views[10]["id"]) not in mapped  # written, then rolled back with its failure


async def test_deliveries_are_normalised_in_the_order_they_arrived(
    client: httpx.AsyncClient, settings: Settings, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    keys = [f"o-{n:02}" for n in range(30)]
    answers = [await _post(client, source["webhook_url"], source["secret"], k) for k in keys]
    await settled(client, auth(settings, workspace, "admin"), answers[-1].json()["id"])
    mine = [d for d in mapper.seen if d.workspace == workspace]
    assert [d.id for d in mine] == [uuid.UUID(a.json()["id"]) for a in answers]


async def test_prefer_wait_answers_the_outcome_and_respond_async_does_not(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    url, secret = source["webhook_url"], source["secret"]
    cases = [
        ("wait=10", "processed"),
        ("respond-async, wait=10", "received"),
        ("wait=soon", "received"),
        ("handling=lenient; wait=5", "processed"),
    ]
    for n, (prefer, expected) in enumerate(cases):
        body, headers = signed(secret, {"id": f"w-{n}", "type": "t"})
        answer = await client.post(url, content=body, headers=headers | {"Prefer": prefer})
        assert (answer.status_code, answer.json()["status"]) == (202, expected), prefer


async def test_a_delivery_left_stored_by_a_stopped_process_is_normalised_by_another(
    settings: Settings, pool: Pool, workspace: str
) -> None:
    stopped = Mapper()
    async with webhook_app(settings, pool, stopped) as first:
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            source = await register(client, settings, workspace)
    # What a process that died between the commit and the normaliser leaves behind:
    await pool.execute(
        "INSERT INTO webhook_delivery (id, workspace, source_id, provider, delivery_key, "
        "event_type, body) VALUES ($1, $2, $3, 'signed', 'left', 't', $4)",
        uuid.uuid4(),
        workspace,
        uuid.UUID(source["id"]),
        b'{"id": "left", "type": "t"}',
    )
    other = Mapper()
    polling = settings.model_copy(update={"webhook_normalise_poll_seconds": 0.2})
    async with webhook_app(polling, pool, other):
        for _ in range(100):
            if any(d.workspace == workspace for d in other.seen):
                break
            await asyncio.sleep(0.05)
    assert [d.workspace for d in other.seen if d.workspace == workspace] == [workspace]
    status = await pool.fetchval(
        "SELECT status FROM webhook_delivery WHERE workspace = $1", workspace
    )
    assert status == "processed"


async def test_a_replica_with_a_cached_source_follows_a_rotation_and_a_deletion(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    admin = auth(settings, workspace, "admin")
    async with webhook_app(settings, pool, Mapper()) as replica:
        transport = httpx.ASGITransport(app=replica)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as other:
            url = source["webhook_url"]
            assert (await _post(other, url, source["secret"], "r-1")).status_code == 202
            rotated = (
                await client.post(f"/v1/sources/{source['id']}/rotate", headers=admin)
            ).json()
            # The replica's cache holds only the old secret; the new one is read on a miss.
            assert (await _post(other, url, rotated["secret"], "r-2")).status_code == 202
            assert (await _post(other, url, "forged-secret", "r-3")).status_code == 401
            assert (await client.delete(f"/v1/sources/{source['id']}", headers=admin)).is_success
            gone = await _post(other, url, rotated["secret"], "r-4")
            assert (gone.status_code, gone.headers["content-type"]) == (
                404,
                "application/problem+json",
            )
    left = await pool.fetchval(
        "SELECT count(*) FROM webhook_delivery WHERE workspace = $1", workspace
    )
    assert left == 0  # deleted with the source, and r-4 never stored


async def test_one_delivery_and_its_view_are_confined_to_the_workspace(
    client: httpx.AsyncClient, settings: Settings, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    answer = await _post(client, source["webhook_url"], source["secret"], "v-1")
    delivery = answer.json()["id"]
    mine = await client.get(
        f"/v1/deliveries/{delivery}", headers=auth(settings, workspace, "admin")
    )
    assert (mine.status_code, mine.json()["delivery_key"]) == (200, "v-1")
    other = auth(settings, f"b-{workspace}"[:60], "admin")
    for url in (f"/v1/deliveries/{delivery}", f"/v1/deliveries/{uuid.uuid4()}"):
        missing = await client.get(url, headers=other)
        assert (missing.status_code, missing.headers["content-type"]) == (
            404,
            "application/problem+json",
        )
    reader = auth(settings, workspace, "feedback:read")
    assert (await client.get(f"/v1/deliveries/{delivery}", headers=reader)).status_code == 403


async def test_a_stopped_intake_refuses_with_503_rather_than_hang(
    settings: Settings, pool: Pool, workspace: str
) -> None:
    intake = Intake(Mapper())
    loops = [asyncio.create_task(loop) for _, loop in intake.loops(pool, settings)]
    await asyncio.sleep(0)
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    delivery = NewDelivery(uuid.uuid4(), workspace, uuid.uuid4(), "signed", "k", "t", b"{}")
    with pytest.raises(ProblemError) as refused:
        await asyncio.wait_for(intake.store(delivery), 5)
    assert refused.value.status == 503


async def test_the_database_away_fails_every_waiting_sender_at_once_and_the_writer_lives(
    settings: Settings, workspace: str
) -> None:
    own = await create_pool(settings, schema="feedback")
    intake = Intake(Mapper())
    loops = [asyncio.create_task(loop) for _, loop in intake.loops(own, settings)]
    await own.close()
    deliveries = [
        NewDelivery(uuid.uuid4(), workspace, uuid.uuid4(), "signed", f"k-{n}", "t", b"{}")
        for n in range(5)
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(intake.store(d) for d in deliveries), return_exceptions=True), 5
    )
    assert all(isinstance(r, Exception) and not isinstance(r, ProblemError) for r in results)
    assert not any(task.done() for task in loops)  # still there for when the database is back
    for task in loops:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)


@pytest.mark.parametrize(
    ("prefer", "seconds"),
    [
        (None, 0.0),
        ("wait=3", 3.0),
        ("respond-async, wait=3", 0.0),
        ("wait=600", 10.0),
        ("wait=-4", 0.0),
        ("wait=\u00b2", 0.0),
        ("wait=" + "9" * 5000, 0.0),
        ("return=minimal; wait = 2", 2.0),
    ],
)
def test_prefer_wait_is_read_leniently_and_capped(prefer: str | None, seconds: float) -> None:
    assert wait_preference(prefer) == seconds


async def test_a_stalled_writer_refuses_new_deliveries_past_the_limit(
    settings: Settings, pool: Pool, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_writer, "MAX_WAITING", 3)
    intake = Intake(Mapper())
    for _, loop in intake.loops(pool, settings):
        loop.close()  # a writer that never writes: the database stalled
    waiting = [
        asyncio.create_task(
            intake.store(NewDelivery(uuid.uuid4(), workspace, uuid.uuid4(), "s", f"k{n}", "t", b""))
        )
        for n in range(3)
    ]
    await asyncio.sleep(0)
    with pytest.raises(ProblemError) as refused:
        await intake.store(NewDelivery(uuid.uuid4(), workspace, uuid.uuid4(), "s", "k", "t", b""))
    assert (refused.value.status, refused.value.headers) == (503, {"Retry-After": "1"})
    assert not any(task.done() for task in waiting)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_bodies_are_stored_compressed_and_read_back_as_they_were_sent(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str, mapper: Mapper
) -> None:
    source = await register(client, settings, workspace)
    body, headers = signed(source["secret"], {"id": "big", "type": "t", "text": "words " * 300})
    answer = await client.post(source["webhook_url"], content=body, headers=headers | WAIT)
    assert (answer.status_code, answer.json()["status"]) == (202, "processed")
    row = await pool.fetchrow(
        "SELECT body_codec, body FROM webhook_delivery WHERE workspace = $1", workspace
    )
    assert row is not None
    assert (row["body_codec"], len(row["body"]) < len(body) / 4) == ("lz4", True)
    # A replay reads the body from the database, as another replica's normaliser would.
    mapper.seen.clear()
    mapper.record = False  # mapped once already
    replay = f"/v1/deliveries/{answer.json()['id']}/replay"
    replayed = await client.post(replay, headers=auth(settings, workspace, "admin"))
    assert replayed.json()["status"] == "processed"
    assert [d.body for d in mapper.seen if d.workspace == workspace] == [body]


async def test_the_database_stores_bodies_without_compressing_them_again(pool: Pool) -> None:
    storage = await pool.fetchval(
        "SELECT attstorage::text FROM pg_attribute "
        "WHERE attrelid = 'webhook_delivery'::regclass AND attname = 'body'"
    )
    assert storage == "e"  # EXTERNAL: out of line, never compressed by the database


async def test_bodies_this_process_stored_are_normalised_without_reading_them_back(
    client: httpx.AsyncClient,
    settings: Settings,
    workspace: str,
    mapper: Mapper,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # This test's bodies cannot be read back: only those kept in memory can be normalised.
    unreadable = f"{intake_module._BODIES} AND delivery_key NOT LIKE 'kept-%'"
    monkeypatch.setattr(intake_module, "_BODIES", unreadable)
    source = await register(client, settings, workspace)
    url, secret = source["webhook_url"], source["secret"]
    answers = [await _post(client, url, secret, f"kept-{n}") for n in range(5)]
    admin = auth(settings, workspace, "admin")
    for answer in answers:
        assert answer.status_code == 202
        assert (await settled(client, admin, answer.json()["id"]))["status"] == "processed"
    assert len([d for d in mapper.seen if d.workspace == workspace]) == 5


def test_kept_bodies_are_bounded_oldest_first_and_taken_once() -> None:
    cache = BodyCache(limit=10)
    first, second, third, huge = (uuid.uuid4() for _ in range(4))
    cache.put(first, b"aaaa")
    cache.put(second, b"bbbb")
    cache.put(second, b"other")  # a body never changes: the first one stays
    cache.put(third, b"cccc")  # 12 bytes: the oldest goes
    cache.put(huge, b"x" * 11)  # larger than the whole cache: not kept
    assert cache.size == 8
    assert cache.get(second) == b"bbbb"  # looked at, still kept
    assert cache.take(first) is None
    assert cache.take(huge) is None
    assert cache.take(second) == b"bbbb"
    assert cache.take(second) is None
    assert cache.take(third) == b"cccc"
    assert cache.size == 0


async def test_one_normaliser_at_a_time_the_claim_waits_for_the_other(
    client: httpx.AsyncClient, settings: Settings, pool: Pool, workspace: str
) -> None:
    source = await register(client, settings, workspace)
    lock = "hashtext('webhook-normaliser:' || current_schema())"
    async with pool.acquire() as other:  # another process's normaliser, mid-batch
        await other.execute(f"SELECT pg_advisory_lock({lock})")
        try:
            body, headers = signed(source["secret"], {"id": "held", "type": "t"})
            held = await client.post(
                source["webhook_url"], content=body, headers=headers | {"Prefer": "wait=1"}
            )
            assert held.json()["status"] == "received"  # stored, but not normalised meanwhile
        finally:
            await other.execute(f"SELECT pg_advisory_unlock({lock})")
    view = await settled(client, auth(settings, workspace, "admin"), held.json()["id"])
    assert view["status"] == "processed"
