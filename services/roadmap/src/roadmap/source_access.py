"""`/v1/sources/{id}/api-access`: the API token a GitLab source reads milestone titles with.

The token is sealed with the settings' Fernet key, like webhook secrets, and never shown again:
answers say only where it points and when it was set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, field_validator

from prodops.http.auth import Admin
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError, require_json
from prodops.runtime.db import Connection, request_transaction
from prodops.runtime.settings import Settings
from prodops.webhooks.sources import SecretBox
from roadmap import tracker_sql as sql

router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=PROBLEM_RESPONSES)
# Only GitLab's hooks leave out what its API must fill in (milestone titles).
API_PROVIDERS = frozenset({"gitlab"})


class ApiAccessIn(BaseModel):
    """An API token for a source, and the API it is for."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(
        min_length=8,
        max_length=500,
        description="A GitLab token with `read_api`; stored encrypted, never shown again",
    )
    base_url: HttpUrl = Field(
        default=HttpUrl("https://gitlab.com"), description="The GitLab instance, without /api/v4"
    )

    @field_validator("token")
    @classmethod
    def _header_safe(cls, token: SecretStr) -> SecretStr:
        # It travels as a header: anything else would fail every lookup, quoting part of it.
        if not all("!" <= char <= "~" for char in token.get_secret_value()):
            raise ValueError("token must be printable ASCII without spaces")
        return token


class ApiAccess(BaseModel):
    """A source's API access, without its token."""

    source_id: UUID
    base_url: str
    has_token: bool = True
    updated_at: datetime


def _view(row: Any) -> ApiAccess:
    return ApiAccess(
        source_id=row["source_id"], base_url=row["base_url"], updated_at=row["updated_at"]
    )


def _not_found() -> ProblemError:
    return ProblemError(404, "Not Found", "no API access for such a source in this workspace")


async def _check_source(conn: Connection, source_id: UUID) -> None:
    provider = await conn.fetchval(sql.SOURCE_PROVIDER, source_id)
    if provider is None:
        raise ProblemError(404, "Not Found", "no such source in this workspace")
    if provider not in API_PROVIDERS:
        raise ProblemError(422, "Unprocessable Content", f"{provider} sources take no API token")


def base_url_of(body: ApiAccessIn, settings: Settings) -> str:
    """The API base URL to store, without a trailing slash; https only in production."""
    # The token travels to this address: plain http only where nothing real is at stake.
    if body.base_url.scheme != "https" and settings.env == "production":
        raise ProblemError(422, "Unprocessable Content", "base_url must be https")
    return str(body.base_url).rstrip("/")


@router.put(
    "/{source_id}/api-access", response_model=ApiAccess, dependencies=[Depends(require_json)]
)
async def set_api_access(
    request: Request, source_id: UUID, body: ApiAccessIn, principal: Admin
) -> ApiAccess:
    """Set or replace the source's API token; cached milestone titles are read again."""
    settings: Settings = request.app.state.settings
    base_url = base_url_of(body, settings)
    sealed = SecretBox(settings).seal(body.token.get_secret_value())
    async with request_transaction(request, principal.workspace) as conn:
        await _check_source(conn, source_id)
        row = await conn.fetchrow(
            sql.UPSERT_API_ACCESS, source_id, principal.workspace, base_url, sealed
        )
        await conn.execute(sql.FORGET_MILESTONES, source_id)
    return _view(row)


@router.get("/{source_id}/api-access", response_model=ApiAccess)
async def get_api_access(request: Request, source_id: UUID, principal: Admin) -> ApiAccess:
    """Where the source's API token points (never the token)."""
    async with request_transaction(request, principal.workspace) as conn:
        row = await conn.fetchrow(sql.SELECT_API_ACCESS, source_id)
    if row is None:
        raise _not_found()
    return _view(row)


@router.delete("/{source_id}/api-access", status_code=status.HTTP_204_NO_CONTENT)
async def delete_api_access(request: Request, source_id: UUID, principal: Admin) -> Response:
    """Forget the source's API token; its GitLab milestones link no launch from now on."""
    async with request_transaction(request, principal.workspace) as conn:
        result = await conn.execute(sql.DELETE_API_ACCESS, source_id)
        await conn.execute(sql.FORGET_MILESTONES, source_id)
    if result.endswith(" 0"):
        raise _not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
