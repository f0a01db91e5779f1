"""Signed GitHub `issues.opened` deliveries, built from the real sample payload in the fixtures."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import orjson

SAMPLE = (
    Path(__file__).parents[1] / "tests" / "fixtures" / "webhooks" / "github" / "issues.opened.json"
)
REPOSITORY = "bench/shop"


@cache
def _sample() -> dict[str, Any]:
    sample: dict[str, Any] = orjson.loads(SAMPLE.read_bytes())
    return sample


def issue_payload(number: int, launch_key: str | None) -> dict[str, Any]:
    """The sample `issues.opened` as issue `number`, in the milestone named `launch_key`."""
    sample = _sample()
    issue = dict(sample["issue"])
    issue.update(
        id=10_000_000 + number,
        number=number,
        title=f"Bench issue {number}",
        html_url=f"https://github.com/{REPOSITORY}/issues/{number}",
        labels=[{"name": "P3"}],
        # A milestone titled with a launch key links the issue to that launch (design.md §4).
        milestone=None if launch_key is None else {**issue["milestone"], "title": launch_key},
    )
    repository = {**sample["repository"], "full_name": REPOSITORY}
    return {**sample, "issue": issue, "repository": repository}


def signed_delivery(
    secret: str, number: int, launch_key: str | None
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one delivery, with a fresh `X-GitHub-Delivery` (so never a duplicate)."""
    body = orjson.dumps(issue_payload(number, launch_key))
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def signed_request(host: str, path: str, secret: str, number: int, launch_key: str | None) -> bytes:
    """One complete HTTP/1.1 request carrying a signed delivery."""
    body, headers = signed_delivery(secret, number, launch_key)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n{lines}\r\n"
    return head.encode() + body


def get_request(host: str, path: str, token: str) -> bytes:
    """One complete HTTP/1.1 GET with a bearer token."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
