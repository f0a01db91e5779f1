"""Outbound webhooks (design.md §6): enqueue signal events, sign and send them, retry, disable.

A delivery commits with the signal that caused it (`enqueue` runs in the caller's transaction).
Dispatchers on every replica claim due deliveries with SKIP LOCKED and a lease, send them outside
any transaction, then record the attempt: 2xx delivers, anything else is retried with capped,
jittered exponential back-off until the retry horizon, and a subscription that keeps failing is
disabled until someone enables it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

import asyncpg
import httpx
from asyncpg.pool import PoolConnectionProxy

from insights import subscriptions_sql as sql
from prodops import __version__
from prodops.db import Connection, Pool
from prodops.events import Event, new_id, utcnow
from prodops.settings import Settings
from prodops.sources import SecretBox
from prodops.standard_webhooks import sign

log = logging.getLogger(__name__)

# The event types a subscription can ask for; an empty list means all of them.
EventType = Literal[
    "prodops.signal.launch_readiness.changed.v1", "prodops.signal.alignment.changed.v1"
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
PING_TYPE = "prodops.webhook.ping.v1"
# What the migration's trigger notifies: 'prodops_outbound_' || current_schema().
CHANNEL = "prodops_outbound_insights"
_PURGE_EVERY_SECONDS = 3600.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURLError(ValueError):
    """A subscription URL that is malformed, or leads where webhooks may not go."""


def _is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    # is_global alone lets multicast through on Python 3.11, hence the explicit list.
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def _target(url: str) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeURLError("the URL is malformed") from exc
    if target.scheme not in {"http", "https"} or not target.host:
        raise UnsafeURLError("the URL must be http or https, with a host")
    if not 0 < (target.port or 80) < 65536:
        raise UnsafeURLError("the URL's port is out of range")
    return target


async def check_url(url: str, *, allow_private: bool) -> list[IPAddress]:
    """The addresses `url` may be sent to (IPv4 first); UnsafeURLError when it may not be."""
    target = _target(url)
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            target.raw_host.decode(), port, type=socket.SOCK_STREAM
        )
    except (OSError, UnicodeError) as exc:
        raise UnsafeURLError(f"the host {target.host} does not resolve") from exc
    addresses = sorted(
        {ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in found},
        key=lambda a: (a.version, a.packed),
    )
    # Every address must be public, as a connection may use any one of them.
    if not allow_private and not all(_is_public(a) for a in addresses):
        raise UnsafeURLError(f"the host {target.host} resolves to a non-public address")
    return addresses


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt to send a webhook came to."""

    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.error is None


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The client outbound webhooks are sent with."""
    return httpx.AsyncClient(
        timeout=settings.outbound_timeout_seconds,
        # A redirect could lead to an address the URL guard never saw.
        follow_redirects=False,
        # Proxies from the environment would bypass the pinned address.
        trust_env=False,
        # Connections are pooled per address, so reusing one could carry a request for one host
        # over TLS verified for another host on the same address.
        limits=httpx.Limits(max_keepalive_connections=0),
        headers={"user-agent": f"prodops-webhooks/{__version__}"},
    )


async def _pinned_request(
    client: httpx.AsyncClient, settings: Settings, url: str, headers: dict[str, str], body: bytes
) -> httpx.Request:
    # Resolve and check now, then connect to that very address: DNS rebinding cannot slip a
    # private address in between the check and the connection.
    addresses = await check_url(url, allow_private=settings.outbound_allow_private_urls)
    target = _target(url)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return client.build_request(
        "POST",
        target.copy_with(host=str(addresses[0])),
        headers={**headers, "host": target.netloc.decode()},
        content=body,
        extensions=extensions,
    )


async def send_webhook(
    client: httpx.AsyncClient,
    settings: Settings,
    *,
    url: str,
    secret: str,
    message_id: UUID,
    body: bytes,
) -> AttemptResult:
    """POST one signed message; a refused URL, network error, timeout or non-2xx is a failure."""
    started_at, started = utcnow(), time.monotonic()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "webhook-id": str(message_id),
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret, message_id=str(message_id), timestamp=timestamp, body=body
        ),
    }
    status_code: int | None = None
    try:
        async with asyncio.timeout(settings.outbound_timeout_seconds):
            request = await _pinned_request(client, settings, url, headers, body)
            # The answer's body is never read: a receiver cannot make us hold gigabytes.
            response = await client.send(request, stream=True)
            await response.aclose()
        status_code = response.status_code
        error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
    except UnsafeURLError as exc:
        error = f"refused: {exc}"
    except TimeoutError:
        error = f"timed out after {settings.outbound_timeout_seconds:g} s"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = round((time.monotonic() - started) * 1000)
    return AttemptResult(started_at, status_code, error, duration_ms)


def retry_delay(failures: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after `failures` failures: doubling from `base`, capped, jittered."""
    ceiling = min(cap, base * 2.0 ** min(failures - 1, 40))
    # Jitter spreads the retries of many deliveries that failed together (a receiver outage).
    return rng.uniform(min(base, ceiling), ceiling)


async def enqueue(conn: Connection, event: Event) -> int:
    """Queue `event` for every enabled subscription of its workspace that wants its type."""
    if event.type not in EVENT_TYPES:
        return 0
    status: str = await conn.execute(
        sql.ENQUEUE, event.workspace, event.id, event.type, event.to_bytes()
    )
    return int(status.rsplit(maxsplit=1)[-1])


async def record_attempt(
    conn: Connection, *, delivery_id: UUID, workspace: str, result: AttemptResult
) -> None:
    """Store one attempt of a delivery."""
    await conn.execute(
        sql.INSERT_ATTEMPT,
        new_id(),
        delivery_id,
        workspace,
        result.attempted_at,
        result.status_code,
        result.error,
        result.duration_ms,
    )


class OutboundDispatcher:
    """Sends due deliveries of every workspace; any number of replicas can run one."""

    def __init__(self, pool: Pool, settings: Settings, *, rng: random.Random | None = None) -> None:
        self._pool, self._settings = pool, settings
        self._box = SecretBox(settings)
        self._client = http_client(settings)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._wake = asyncio.Event()

    async def dispatch_batch(self) -> int:
        """Claim, send and record one batch of due deliveries; returns how many."""
        lease = new_id()
        # The lease outlives the whole send (timeout included), so no other dispatcher sends
        # the same delivery while this one still might.
        lease_seconds = self._settings.outbound_timeout_seconds * 2 + 5
        rows = await self._pool.fetch(
            sql.CLAIM, self._settings.outbound_batch_size, lease, lease_seconds
        )
        results = await asyncio.gather(*(self._send(row) for row in rows))
        for row, result in zip(rows, results, strict=True):
            await self._record(row, lease, result)
        return len(rows)

    async def drain(self) -> int:
        """Dispatch until no delivery is due."""
        total = 0
        while sent := await self.dispatch_batch():
            total += sent
            if sent < self._settings.outbound_batch_size:
                break
        return total

    async def _send(self, row: asyncpg.Record) -> AttemptResult:
        return await send_webhook(
            self._client,
            self._settings,
            url=row["url"],
            secret=self._box.open(row["secret"]),
            message_id=row["event_id"],
            body=row["payload"],
        )

    async def _record(self, row: asyncpg.Record, lease: UUID, result: AttemptResult) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            if result.ok:
                mine = await conn.fetchval(sql.RECORD_SUCCESS, row["id"], lease)
                if mine is not None:
                    await conn.execute(sql.SUBSCRIPTION_SUCCEEDED, mine)
            else:
                mine = await self._record_failure(conn, row, lease, result)
            if mine is None:
                log.warning("delivery %s is gone or lost its lease; not recorded", row["id"])
                return
            await record_attempt(
                conn, delivery_id=row["id"], workspace=row["workspace"], result=result
            )

    async def _record_failure(
        self, conn: Connection, row: asyncpg.Record, lease: UUID, result: AttemptResult
    ) -> UUID | None:
        settings = self._settings
        delay = retry_delay(
            row["attempts"] + 1,
            base=settings.outbound_retry_base_seconds,
            cap=settings.outbound_retry_max_delay_seconds,
            rng=self._rng,
        )
        horizon = settings.outbound_retry_horizon_hours
        settled = await conn.fetchrow(
            sql.RECORD_FAILURE, row["id"], lease, result.error, delay, horizon
        )
        if settled is None:
            return None
        health = await conn.fetchrow(
            sql.SUBSCRIPTION_FAILED,
            row["subscription_id"],
            settings.outbound_disable_after_failures,
            settings.outbound_disable_after_hours,
        )
        if health is not None and health["should_disable"]:
            reason = (
                f"{health['consecutive_failures']} failed attempts in a row and no successful "
                f"delivery since {health['failing_since']:%Y-%m-%d %H:%M:%S %Z}; "
                f"last error: {result.error}"
            )
            await conn.execute(sql.DISABLE_SUBSCRIPTION, row["subscription_id"], reason)
            log.warning("subscription %s disabled: %s", row["subscription_id"], reason)
        subscription: UUID = settled["subscription_id"]
        return subscription

    async def purge(self) -> int:
        """Delete delivered and failed deliveries older than the retention."""
        status: str = await self._pool.execute(
            sql.PURGE_SETTLED, self._settings.outbound_retention_hours
        )
        return int(status.rsplit(maxsplit=1)[-1])

    async def aclose(self) -> None:
        """Close the HTTP client (run() does it on the way out)."""
        await self._client.aclose()

    async def run(self) -> None:
        """Dispatch forever: woken by NOTIFY when deliveries are queued, polling as a fallback."""
        listener = await self._listen()
        failures, purged_at = 0, time.monotonic()
        try:
            while True:
                self._wake.clear()
                try:
                    await self.drain()
                    if time.monotonic() - purged_at > _PURGE_EVERY_SECONDS:
                        await self.purge()
                        purged_at = time.monotonic()
                    failures = 0
                except Exception:
                    failures += 1
                    # Back off while the database stays away; the deliveries wait safely.
                    delay = min(30.0, self._settings.outbound_poll_interval_seconds * 2**failures)
                    log.exception("outbound dispatch failed (%d in a row)", failures)
                    await asyncio.sleep(delay)
                # asyncio.timeout, not wait_for: see OutboxRelay.run (a cancel lost on 3.11).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.outbound_poll_interval_seconds):
                        await self._wake.wait()
        finally:
            await self._client.aclose()
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.remove_listener(CHANNEL, self._on_notify)
                    await self._pool.release(listener)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _listen(self) -> PoolConnectionProxy[Any] | None:
        try:
            conn = await self._pool.acquire()
        except Exception:
            log.warning("LISTEN %s failed; the dispatcher polls only", CHANNEL, exc_info=True)
            return None
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException as exc:
            # Cancelled or failed after acquire: give the connection back, or closing the pool
            # would wait for it forever.
            await self._pool.release(conn)
            if not isinstance(exc, Exception):
                raise
            log.warning("LISTEN %s failed; the dispatcher polls only", CHANNEL, exc_info=True)
            return None
        return conn
