"""The vendor-module toolkit: what a webhook provider implements and the helpers it reads with.

Each vendor module (`feedback.webhooks.zendesk`, `roadmap.webhooks.github`, ...) implements
`Provider` over an `InboundWebhook` and parses with these helpers, so every vendor refuses a
malformed body, compares signatures and reads ids the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from fastapi.responses import Response

from prodops.webhooks.standard import SignatureError

__all__ = [
    "Identity",
    "InboundWebhook",
    "MalformedWebhookError",
    "Provider",
    "base64_hmac",
    "body_hash",
    "headers_of",
    "hex_hmac",
    "json_object",
    "matches_one",
    "number_of",
    "required_header",
    "signature_header",
    "text_of",
]


@dataclass(frozen=True)
class InboundWebhook:
    """One webhook request as received: lower-cased headers and the raw body bytes."""

    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Identity:
    """What a delivery is: the vendor's stable delivery key and its event type."""

    delivery_key: str
    event_type: str


class MalformedWebhookError(Exception):
    """A verified request whose body or headers cannot be understood (answered 400)."""


class Provider(Protocol):
    """One vendor's scheme: how it signs, how it identifies deliveries, its setup handshake."""

    name: str

    def verify(
        self, webhook: InboundWebhook, secrets: Sequence[str], *, now: float, tolerance: float
    ) -> None:
        """Raise SignatureError unless the request is signed with one of `secrets`."""

    def identify(self, webhook: InboundWebhook) -> Identity:
        """The dedup key (stable across the vendor's retries) and the event type."""

    def handshake(self, webhook: InboundWebhook) -> Response | None:
        """The answer to a setup request (a ping or a challenge), or None for a delivery."""


def json_object(body: bytes) -> dict[str, Any]:
    """A verified body parsed as a JSON object; MalformedWebhookError (a 400) otherwise."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedWebhookError("body is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedWebhookError("body is not a JSON object")
    return value


def headers_of(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI request headers as text, names lower-case; of a repeated header, the last."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}


def hex_hmac(secret: str, message: bytes, digest: str = "sha256") -> str:
    """Hex of the HMAC of `message`, keyed by the secret's own bytes, as the trackers sign."""
    # Not a whsec_ decoded: the vendors that sign so never decode the secret they issue.
    return hmac.new(secret.encode(), message, digest).hexdigest()


def base64_hmac(secret: str, message: bytes, digest: str = "sha256") -> str:
    """Base64 of the HMAC of `message`, keyed by the secret's own bytes, as the desks sign."""
    return base64.b64encode(hmac.new(secret.encode(), message, digest).digest()).decode()


def matches_one(offered: str, expected: Iterable[str]) -> bool:
    """Whether `offered` equals one of `expected` (one per secret), compared in constant time."""
    # Bytes, not str: compare_digest raises on non-ASCII text, and a header is caller-controlled.
    given = offered.strip().encode()
    return any(hmac.compare_digest(given, candidate.encode()) for candidate in expected)


def text_of(value: object) -> str | None:
    """A payload value as trimmed text (ids may come as numbers); None when absent or blank."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def number_of(value: object) -> float | None:
    """A payload value as a number; None when it is not one (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def body_hash(webhook: InboundWebhook) -> str:
    """A dedup key for vendors that send no delivery id: the hash of the signed body."""
    return "sha256:" + hashlib.sha256(webhook.body).hexdigest()


def signature_header(webhook: InboundWebhook, name: str) -> str:
    """The header a vendor signs in; SignatureError (a 401) when the request has none."""
    offered = webhook.headers.get(name)
    if offered is None:
        raise SignatureError(f"missing {name} header")
    return offered


def required_header(webhook: InboundWebhook, name: str) -> str:
    """A header a delivery is identified by, trimmed; MalformedWebhookError when blank or absent."""
    value = webhook.headers.get(name, "").strip()
    if not value:
        raise MalformedWebhookError(f"missing {name} header")
    return value
