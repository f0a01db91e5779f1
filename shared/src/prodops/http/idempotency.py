"""`Idempotency-Key` on POST: the first response is stored and replayed to every retry."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.datastructures import State
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prodops.http.auth import AuthError, TokenVerifier
from prodops.http.problems import ProblemError, problem_response
from prodops.runtime.db import Pool

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY_HEADER = IDEMPOTENCY_HEADER.lower().encode()
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")
# An in-progress claim is a lease: if its process dies mid-request, the key frees up after
# this long instead of answering "still in progress" until the whole TTL has passed.
IN_PROGRESS_LEASE_SECONDS = 120.0
# Only headers that describe the stored body; anything per-response (dates, trace ids) is not.
_REPLAYED_HEADERS = ("content-type", "location")

# Inserts the claim, or takes over an expired row in the same statement; a live row is left
# alone, so RETURNING yields nothing and the caller reads that row instead.
_CLAIM = """
INSERT INTO idempotency_key AS held (workspace, key, method, path, request_hash, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
ON CONFLICT (workspace, key) DO UPDATE
SET method = excluded.method,
    path = excluded.path,
    request_hash = excluded.request_hash,
    status = NULL,
    headers = NULL,
    body = NULL,
    created_at = now(),
    expires_at = excluded.expires_at
WHERE held.expires_at <= now()
RETURNING true
"""

_FIND = """
SELECT request_hash, status, headers, body
FROM idempotency_key
WHERE workspace = $1 AND key = $2 AND expires_at > now()
"""

_COMPLETE = """
UPDATE idempotency_key
SET status = $4, headers = $5, body = $6, expires_at = now() + make_interval(secs => $7)
WHERE workspace = $1 AND key = $2 AND request_hash = $3 AND status IS NULL
"""

_RELEASE = """
DELETE FROM idempotency_key
WHERE workspace = $1 AND key = $2 AND request_hash = $3 AND status IS NULL
"""

_PURGE_EXPIRED = """
DELETE FROM idempotency_key
WHERE expires_at <= now()
"""


@dataclass(frozen=True, slots=True)
class _Claim:
    workspace: str
    key: str
    method: str
    path: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class _Stored:
    request_hash: str
    status: int | None
    headers: dict[str, str] | None
    body: bytes | None


async def purge_expired_keys(pool: Pool) -> int:
    """Delete expired idempotency keys; returns how many went."""
    result: str = await pool.execute(_PURGE_EXPIRED)
    return int(result.rsplit(" ", 1)[-1])


class IdempotencyMiddleware:
    """Stores the response of a POST carrying `Idempotency-Key` and replays it to retries.

    Keys are per workspace (taken from the verified bearer token); a request without a valid
    token passes through untouched so the route answers 401. Responses of 5xx, and requests
    that raise, release the key so the client may retry. Install inside BodyLimitMiddleware:
    the body is read whole here to hash it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Claim the key and run the request, or answer from what the key already holds."""
        key = _header(scope, _KEY_HEADER) if _is_post(scope) else None
        if key is None:
            await self.app(scope, receive, send)
            return
        if not _VALID_KEY.fullmatch(key):
            error = ProblemError(
                400, "Bad Request", "Idempotency-Key must be 1-255 printable ASCII characters"
            )
            await problem_response(error, scope["path"])(scope, receive, send)
            return
        state: State = scope["app"].state
        workspace = await _workspace(state.token_verifier, scope)
        if workspace is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        claim = _Claim(workspace, key, scope["method"], scope["path"], _request_hash(scope, body))
        pool: Pool = state.pool
        stored = await _claim_or_find(pool, claim)
        if stored is None:
            ttl = state.settings.idempotency_ttl_hours * 3600
            await _Execution(self.app, pool, claim, ttl).run(scope, _replay(body, receive), send)
            return
        await _answer_from(stored, claim)(scope, receive, send)


def _is_post(scope: Scope) -> bool:
    return bool(scope["type"] == "http" and scope["method"] == "POST")


def _header(scope: Scope, name: bytes) -> str | None:
    value = next((v for k, v in scope["headers"] if k == name), None)
    return value.decode("latin-1") if value is not None else None


async def _workspace(verifier: TokenVerifier, scope: Scope) -> str | None:
    scheme, _, token = (_header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        principal = await verifier.verify(token.strip())
    except AuthError:
        return None
    return principal.workspace


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            # Afterwards only a disconnect can come, and the server still reports it.
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


def _request_hash(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    parts = (scope["method"].encode(), scope["path"].encode(), scope["query_string"], body)
    for part in parts:
        # Length-prefixed, so no two different requests can concatenate to the same bytes.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def _claim_or_find(pool: Pool, claim: _Claim) -> _Stored | None:
    """None once this request holds the key; otherwise what another request left in it."""
    # Two rounds: the row found conflicting may be released (or expire) before it is read.
    for _ in range(2):
        claimed = await pool.fetchval(
            _CLAIM,
            claim.workspace,
            claim.key,
            claim.method,
            claim.path,
            claim.request_hash,
            IN_PROGRESS_LEASE_SECONDS,
        )
        if claimed:
            return None
        row = await pool.fetchrow(_FIND, claim.workspace, claim.key)
        if row is not None:
            return _Stored(row["request_hash"], row["status"], row["headers"], row["body"])
    return _Stored(claim.request_hash, None, None, None)


def _answer_from(stored: _Stored, claim: _Claim) -> Response:
    if stored.request_hash != claim.request_hash:
        error = ProblemError(
            409,
            "Idempotency-Key reused with a different request",
            "this key was first used with another method, path, query or body",
        )
        return problem_response(error, claim.path)
    if stored.status is None:
        error = ProblemError(
            409,
            "A request with this Idempotency-Key is still in progress",
            "retry once the first request has been answered",
            headers={"Retry-After": "1"},
        )
        return problem_response(error, claim.path)
    headers = {**(stored.headers or {}), REPLAYED_HEADER: "true"}
    return Response(stored.body or b"", status_code=stored.status, headers=headers)


class _Execution:
    """One claimed request: runs the app, then stores its response or releases the key."""

    def __init__(self, app: ASGIApp, pool: Pool, claim: _Claim, ttl_seconds: float) -> None:
        self.app, self.pool, self.claim, self.ttl_seconds = app, pool, claim, ttl_seconds
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.settled = False

    async def run(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def capture(message: Message) -> None:
            await self._capture(message)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            # Shielded: a cancelled request (client gone) must still release its key.
            with anyio.CancelScope(shield=True):
                await self._release()
            raise
        await self._release()

    async def _capture(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = _replayed_headers(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))
            # Stored before the last chunk goes out, so a client that has the whole response
            # and retries at once gets the replay, not "still in progress".
            if not message.get("more_body", False):
                await self._store()

    async def _store(self) -> None:
        if self.status is None or self.status >= 500 or self.settled:
            return
        claim = self.claim
        await self.pool.execute(
            _COMPLETE,
            claim.workspace,
            claim.key,
            claim.request_hash,
            self.status,
            self.headers,
            b"".join(self.chunks),
            self.ttl_seconds,
        )
        self.settled = True

    async def _release(self) -> None:
        if self.settled:
            return
        claim = self.claim
        await self.pool.execute(_RELEASE, claim.workspace, claim.key, claim.request_hash)
        self.settled = True


def _replayed_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        text = name.decode("latin-1").lower()
        if text in _REPLAYED_HEADERS:
            headers[text] = value.decode("latin-1")
    return headers


_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Retries with the same key get the first answer again (header `Idempotent-Replayed: "
        "true`); the same key with another request is 409. Keys live per workspace."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def document_idempotency_key(app: FastAPI) -> None:
    """Show the `Idempotency-Key` header on every authenticated POST in the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for item in schema["paths"].values():
            post = item.get("post")
            if post and post.get("security"):
                post.setdefault("parameters", []).append(_PARAMETER)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
