"""Sending one outbound webhook safely: the URL guard, the pinned connection, the signature."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import httpx

from prodops import __version__
from prodops.contract import utcnow
from prodops.runtime.settings import Settings
from prodops.webhooks.standard import sign

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
    # Jitter spreads the retries of many dispatches that failed together (a receiver outage).
    return rng.uniform(min(base, ceiling), ceiling)
