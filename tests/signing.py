"""Deliveries signed the way each vendor signs them, for tests that go through the webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson


def github_delivery(
    secret: str, event: str, payload: dict[str, Any]
) -> tuple[bytes, dict[str, str]]:
    """A GitHub delivery (`sha256=` + hex HMAC-SHA256 of the body)."""
    body = orjson.dumps(payload)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def zendesk_delivery(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A Zendesk delivery (base64 HMAC-SHA256 of timestamp + body)."""
    body = orjson.dumps(payload)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return body, {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }
