"""Inbound webhooks under random bodies and headers: 400, 401, 404, 413 or 2xx, never a 5xx.

A real source is registered per provider; Hypothesis then sends it anything: garbage bytes, text
that is not UTF-8, JSON that is not an object, vendor-shaped JSON with wrong types, bodies over
the 1 MiB limit (declared or streamed), missing, garbled and forged signature headers, and URLs
with unknown source ids or providers. A second test signs random vendor-shaped JSON correctly, so
it reaches the normaliser, which must store it (processed, ignored or failed), never fail it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feedback.tickets import PROVIDERS as FEEDBACK_PROVIDERS
from fuzz.harness import Service, fuzz_settings
from fuzz.vendors import SERVICES, SIGNERS, VENDORS, Vendor, json_values
from prodops.runtime.settings import Settings
from prodops.webhooks.provider import InboundWebhook, MalformedWebhookError, Provider
from prodops.webhooks.standard import SignatureError
from roadmap.tracker import PROVIDERS as ROADMAP_PROVIDERS
from support import auth

EXAMPLES = 40
ALLOWED = {200, 202, 400, 401, 404, 413}
PROVIDERS: dict[str, Provider] = {**FEEDBACK_PROVIDERS, **ROADMAP_PROVIDERS}
# The apps' own threads draw from `random` while Hypothesis generates, which it flags.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
CASES = [(service, name) for service, names in SERVICES.items() for name in names]
FUZZ_SETTINGS = fuzz_settings(EXAMPLES)

# Header values as a server passes them on: latin-1 text, no control characters, trimmed.
header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
).map(lambda text: text.strip().encode("latin-1"))
huge_numbers = st.integers(min_value=-(10**400), max_value=10**400).map(str)
odd_stamps = st.one_of(
    huge_numbers,
    st.integers(min_value=-(10**13), max_value=10**13).map(str),
    st.floats().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
    st.text(max_size=30),
).map(lambda text: text.strip().encode("latin-1", "replace"))


def bodies(vendor: Vendor, limit: int) -> st.SearchStrategy[bytes]:
    """Anything a caller may send, the body limit and a little beyond included."""
    values = json_values(vendor.words())
    return st.one_of(
        st.binary(max_size=300),
        st.binary(min_size=1, max_size=50).map(lambda raw: b"\xff\xfe" + raw),  # not UTF-8
        values.map(lambda value: json.dumps(value).encode()),
        st.dictionaries(st.sampled_from(vendor.words()), values, max_size=8).map(
            lambda value: json.dumps(value).encode()
        ),
        st.integers(min_value=1, max_value=4096).map(lambda n: b"{" + b" " * (limit + n) + b"}"),
    )


def garbled(vendor: Vendor) -> st.SearchStrategy[dict[str, bytes]]:
    """The vendor's own headers (signatures, timestamps, events) with random values."""
    signers = [s for name, s in SIGNERS.items() if name.partition("-")[0] == vendor.name]
    names = sorted(
        {h for sign in signers for h in sign("whsec_Zm9v", b"", 0.0)} | set(vendor.headers)
    )
    values = header_values | huge_numbers.map(str.encode) | st.just(b"")
    return st.dictionaries(st.sampled_from(names), values, max_size=len(names))


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 256 * 1024):
        yield body[start : start + 256 * 1024]


def _check_answer(response: httpx.Response, secret: str, documented: set[int], asked: str) -> None:
    """An allowed, documented status; errors as problem+json; never the secret."""
    status = response.status_code
    assert status in ALLOWED, f"{status} {response.text[:2000]} for {asked}"
    assert status in documented, f"{status} is not in the OpenAPI document: {response.text}"
    assert secret not in response.text
    if status >= 400:
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["status"] == status


def _documented(service: Service) -> set[int]:
    operation = service.app.openapi()["paths"]["/webhooks/{provider}/{source_id}"]["post"]
    return {int(code) for code in operation["responses"]}


async def _register(
    service: Service, settings: Settings, workspace: str, provider: str
) -> tuple[Any, str, Vendor, set[int]]:
    """A new source of `provider`: its JSON, its secret, the fuzz vendor and documented statuses."""
    answer = await service.client.post(
        "/v1/sources",
        headers=auth(settings, workspace, "admin"),
        json={"provider": provider, "name": f"{provider} fuzz"},
    )
    assert answer.status_code == 201, answer.text
    source = answer.json()
    return source, source["secret"], VENDORS[provider], _documented(service)


@pytest.mark.parametrize(("service", "provider"), CASES, indirect=["service"])
async def test_webhook_answers_anything_with_400_401_404_413_or_2xx(
    service: Service, provider: str, settings: Settings, workspace: str
) -> None:
    source, secret, vendor, documented = await _register(service, settings, workspace, provider)
    others = sorted(set(PROVIDERS) - {provider})
    mine = st.just(source["webhook_url"])
    urls = st.one_of(
        mine,
        mine,
        mine,
        st.uuids().map(lambda unknown: f"/webhooks/{provider}/{unknown}"),
        st.sampled_from(others).map(lambda other: f"/webhooks/{other}/{source['id']}"),
        st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True)
        .filter(lambda name: name not in PROVIDERS)
        .map(lambda name: f"/webhooks/{name}/{source['id']}"),
        st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True).map(
            lambda junk: f"/webhooks/{provider}/{junk}"
        ),
    )
    signing = st.sampled_from(["none", "garbled", "valid", "valid-then-garbled", "odd-stamp"])
    signer = SIGNERS.get(f"{provider}-signed", SIGNERS[provider])

    limit = settings.body_limit_bytes
    absurd = {"body": b"{}", "how": "odd-stamp", "headers": {}, "streamed": False}

    @FUZZ_SETTINGS
    # Always tried, whatever is drawn: a timestamp too large for a float, bodies over the limit.
    @example(url=source["webhook_url"], stamp=b"9" * 400, **absurd)
    @example(url=source["webhook_url"], stamp=b"-" + b"9" * 400, **absurd)
    @example(
        url=source["webhook_url"],
        body=b"[" + b" " * limit + b"]",
        how="valid",
        headers={},
        streamed=True,
        stamp=b"",
    )
    @given(
        url=urls,
        body=bodies(vendor, settings.body_limit_bytes),
        how=signing,
        headers=garbled(vendor),
        streamed=st.booleans(),
        stamp=odd_stamps,
    )
    def answers(
        *, url: str, body: bytes, how: str, headers: dict[str, bytes], streamed: bool, stamp: bytes
    ) -> None:
        sent: dict[str, str | bytes] = {"Content-Type": "application/json"}
        if how.startswith("valid"):
            sent |= SIGNERS[provider](secret, body, time.time())
        elif how == "odd-stamp":
            # Signed over the body, but sent at an odd (or absurd) time.
            sent |= signer(secret, body, time.time())
            sent |= {vendor.stamp: stamp} if vendor.stamp else headers
        if how in {"garbled", "valid-then-garbled"}:
            sent |= headers
        content = _chunks(body) if streamed else body
        raw = [(k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in sent.items()]
        response = service.call(service.client.post(url, content=content, headers=raw))
        asked = f"{how} POST {url} {sent} streamed={streamed} {body[:300]!r}"
        _check_answer(response, secret, documented, asked)

    await asyncio.to_thread(answers)


def _verdict(provider: str, secret: str, body: bytes, headers: dict[str, str]) -> int | None:
    """What the vendor scheme itself says of a delivery: 401, 400, or None (to be stored)."""
    scheme = PROVIDERS[provider]
    webhook = InboundWebhook({k.lower(): v for k, v in headers.items()}, body)
    try:
        scheme.verify(webhook, [secret], now=time.time(), tolerance=300)
    except SignatureError:
        return 401
    if scheme.handshake(webhook) is not None:
        return 200
    try:
        scheme.identify(webhook)
    except MalformedWebhookError:
        return 400
    return None


@pytest.mark.parametrize(("service", "provider"), CASES, indirect=["service"])
async def test_validly_signed_random_payloads_are_stored_never_a_5xx(
    service: Service, provider: str, settings: Settings, workspace: str
) -> None:
    source, secret, vendor, documented = await _register(service, settings, workspace, provider)
    payloads = st.dictionaries(st.sampled_from(vendor.words()), json_values(vendor.words()))
    # Milliseconds off now; none near the 300 s tolerance, where the oracle and the app may differ.
    stamps = st.one_of(st.just(0), st.integers(-(10**400), 10**400)).filter(
        lambda offset: abs(abs(offset) - 300_000) > 60_000
    )
    stored: list[str] = []

    @FUZZ_SETTINGS
    @given(
        payload=payloads,
        fields=st.fixed_dictionaries(vendor.fields),
        headers=st.fixed_dictionaries(vendor.headers),
        stamp_offset=stamps,
    )
    def stored_or_refused(
        payload: dict[str, Any], fields: dict[str, Any], headers: dict[str, str], stamp_offset: int
    ) -> None:
        payload |= fields
        if provider == "linear":
            payload["webhookTimestamp"] = int(time.time() * 1000) + stamp_offset
        body = json.dumps(payload).encode()
        sent = {"Content-Type": "application/json", **headers}
        sent |= SIGNERS[provider](secret, body, time.time())
        expected = _verdict(provider, secret, body, sent)
        response = service.call(
            service.client.post(source["webhook_url"], content=body, headers=sent)
        )
        _check_answer(response, secret, documented, f"{sent} {body!r}")
        if expected is None:
            assert response.status_code in {200, 202}, response.text
            stored.append(response.json()["status"])
        else:
            assert response.status_code == expected, response.text

    await asyncio.to_thread(stored_or_refused)
    # The payloads are shaped to be identified: most of them must reach the normaliser.
    assert len(stored) >= EXAMPLES // 2, stored
