"""The registry of inbound webhook sources: one per vendor integration of a workspace.

Secrets are encrypted at rest with the settings' Fernet key and shown once, when a source is
created or rotated; a rotated-out secret keeps verifying for a grace period.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from cachetools import TTLCache
from cryptography.fernet import Fernet
from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette

from prodops.contract import new_id, utcnow
from prodops.http.auth import Admin
from prodops.http.pagination import Cursor, Limit, Page, time_id_after
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError
from prodops.http.routes import creates, newest_first
from prodops.runtime.db import Pool, request_transaction
from prodops.runtime.settings import Settings
from prodops.webhooks.standard import new_secret

_INSERT = """
INSERT INTO webhook_source (id, workspace, provider, name, secret) VALUES ($1, $2, $3, $4, $5)
RETURNING *
"""
_LIST = """
SELECT * FROM webhook_source
WHERE ($1::timestamptz IS NULL OR (created_at, id) < ($1, $2::uuid))
ORDER BY created_at DESC, id DESC LIMIT $3
"""
_GET = "SELECT * FROM webhook_source WHERE id = $1"
_ROTATE = """
UPDATE webhook_source
SET previous_secret = secret, previous_secret_expires_at = $3, secret = $2, rotated_at = now()
WHERE id = $1 RETURNING *
"""
_DELETE = "DELETE FROM webhook_source WHERE id = $1"
# Webhook requests carry no token: the source id in the URL names the workspace.
_FOR_WEBHOOK = """
SELECT workspace, secret, previous_secret, previous_secret_expires_at FROM webhook_source
WHERE id = $1 AND provider = $2
"""


class SecretBox:
    """Encrypts secrets for storage with the settings' Fernet key."""

    def __init__(self, settings: Settings) -> None:
        assert settings.secrets_key is not None  # the settings validator guarantees one
        self._fernet = Fernet(settings.secrets_key.get_secret_value())

    def seal(self, secret: str) -> bytes:
        """The stored form of a secret."""
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str:
        """The secret a stored form holds."""
        return self._fernet.decrypt(sealed).decode()


class SourceIn(BaseModel):
    """A source to register."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="the vendor, e.g. zendesk or github")
    name: str = Field(min_length=1, max_length=200)
    secret: str | None = Field(
        default=None,
        min_length=8,
        max_length=500,
        description="the signing secret the vendor issued; one is generated when omitted",
    )


class RotateIn(BaseModel):
    """A new secret for a source (generated when omitted)."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(default=None, min_length=8, max_length=500)


class Source(BaseModel):
    """A registered source; its secret is never shown again."""

    id: UUID
    provider: str
    name: str
    webhook_url: str
    created_at: datetime
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None


class SourceWithSecret(Source):
    """A source as created or rotated: the only time its secret is shown."""

    secret: str


@dataclass(frozen=True)
class WebhookSource:
    """What a webhook request needs to know about its source."""

    workspace: str
    secrets: list[str]


def _generate_secret(provider: str) -> str:
    return new_secret() if provider == "generic" else secrets.token_urlsafe(32)


def _source(row: Any, settings: Settings) -> Source:
    base = (settings.public_url or "").rstrip("/")
    return Source(
        id=row["id"],
        provider=row["provider"],
        name=row["name"],
        webhook_url=f"{base}/webhooks/{row['provider']}/{row['id']}",
        created_at=row["created_at"],
        rotated_at=row["rotated_at"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
    )


@dataclass(frozen=True)
class _Keys:
    """A source's workspace and unsealed secrets, as read at one moment."""

    workspace: str
    secret: str
    previous: str | None
    previous_until: datetime | None

    def source(self) -> WebhookSource:
        valid = [self.secret]
        if self.previous is not None and self.previous_until and self.previous_until > utcnow():
            valid.append(self.previous)
        return WebhookSource(self.workspace, valid)


class SourceCache:
    """Recently read sources, so that a burst of deliveries reads and unseals each source once.

    An entry lives `webhook_source_cache_seconds`. Rotating or deleting a source forgets it in
    this process at once; another process keeps the entry until it expires, which is harmless:
    a signature that fails on a cached entry is checked again against the database before the
    401, a rotated-out secret's expiry is checked at each use, and a delivery for a deleted
    source fails its foreign key and is answered 404 with nothing stored.
    """

    def __init__(self, settings: Settings) -> None:
        self._box = SecretBox(settings)
        self._entries: TTLCache[tuple[str, UUID], _Keys] | None = None
        if settings.webhook_source_cache_seconds > 0:
            self._entries = TTLCache(10_000, settings.webhook_source_cache_seconds)

    async def get(
        self, pool: Pool, *, provider: str, source_id: UUID, fresh: bool = False
    ) -> WebhookSource | None:
        """The source's workspace and valid secrets, if it exists (`fresh`: not from cache)."""
        key = (provider, source_id)
        keys = None if fresh or self._entries is None else self._entries.get(key)
        if keys is None:
            row = await pool.fetchrow(_FOR_WEBHOOK, source_id, provider)
            if row is None:
                self.forget(source_id)
                return None
            previous = row["previous_secret"]
            keys = _Keys(
                row["workspace"],
                self._box.open(row["secret"]),
                None if previous is None else self._box.open(previous),
                row["previous_secret_expires_at"],
            )
            if self._entries is not None:
                self._entries[key] = keys
        return keys.source()

    def forget(self, source_id: UUID) -> None:
        """Drop a source from the cache (after a rotation or a deletion)."""
        if self._entries is not None:
            for key in [k for k in self._entries if k[1] == source_id]:
                self._entries.pop(key, None)


def source_cache(app: Starlette) -> SourceCache:
    """The app's source cache, made on first use."""
    state = app.state
    cache: SourceCache | None = getattr(state, "webhook_sources", None)
    if cache is None:
        cache = state.webhook_sources = SourceCache(state.settings)
    return cache


def sources_router(*, providers: Collection[str]) -> APIRouter:
    """`/v1/sources`: register, list, get, rotate and delete sources of these providers."""
    router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=PROBLEM_RESPONSES)
    known = sorted(providers)

    @creates(router, SourceWithSecret)
    async def create_source(
        request: Request, response: Response, body: SourceIn, principal: Admin
    ) -> SourceWithSecret:
        """Register a source; the answer carries its webhook URL and, this once, its secret."""
        if body.provider not in known:
            raise ProblemError(
                422, "Unprocessable Content", f"provider must be one of: {', '.join(known)}"
            )
        settings: Settings = request.app.state.settings
        secret = body.secret or _generate_secret(body.provider)
        async with request_transaction(request, principal.workspace) as conn:
            row = await conn.fetchrow(
                _INSERT,
                new_id(),
                principal.workspace,
                body.provider,
                body.name,
                SecretBox(settings).seal(secret),
            )
        source = _source(row, settings)
        response.headers["Location"] = f"/v1/sources/{source.id}"
        return SourceWithSecret(**source.model_dump(), secret=secret)

    @router.get("", response_model=Page[Source])
    async def list_sources(
        request: Request, principal: Admin, limit: Limit = 50, cursor: Cursor = None
    ) -> Page[Source]:
        """The workspace's sources, newest first (never their secrets)."""
        async with request_transaction(request, principal.workspace) as conn:
            rows = await conn.fetch(_LIST, *time_id_after(cursor), limit + 1)
        found = [_source(r, request.app.state.settings) for r in rows]
        return newest_first(found, limit)

    @router.get("/{source_id}", response_model=Source)
    async def get_source(request: Request, source_id: UUID, principal: Admin) -> Source:
        """One source (never its secret)."""
        async with request_transaction(request, principal.workspace) as conn:
            row = await conn.fetchrow(_GET, source_id)
        if row is None:
            raise ProblemError(404, "Not Found", "no such source in this workspace")
        return _source(row, request.app.state.settings)

    @router.post("/{source_id}/rotate", response_model=SourceWithSecret)
    async def rotate_source(
        request: Request, source_id: UUID, principal: Admin, body: RotateIn | None = None
    ) -> SourceWithSecret:
        """Replace the secret; the old one keeps verifying for the grace period."""
        settings: Settings = request.app.state.settings
        async with request_transaction(request, principal.workspace) as conn:
            current = await conn.fetchrow(_GET, source_id)
            if current is None:
                raise ProblemError(404, "Not Found", "no such source in this workspace")
            secret = (body.secret if body else None) or _generate_secret(current["provider"])
            grace = utcnow() + timedelta(hours=settings.source_secret_grace_hours)
            row = await conn.fetchrow(_ROTATE, source_id, SecretBox(settings).seal(secret), grace)
        source_cache(request.app).forget(source_id)
        return SourceWithSecret(**_source(row, settings).model_dump(), secret=secret)

    @router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT)
    async def delete_source(request: Request, source_id: UUID, principal: Admin) -> Response:
        """Delete a source; its webhook URL answers 404 from now on."""
        async with request_transaction(request, principal.workspace) as conn:
            result = await conn.execute(_DELETE, source_id)
        if result.endswith(" 0"):
            raise ProblemError(404, "Not Found", "no such source in this workspace")
        source_cache(request.app).forget(source_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router
