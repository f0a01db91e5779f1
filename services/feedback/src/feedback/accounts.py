"""Customer accounts (ARR, segment, plan) from a CRM: upsert, bulk upsert, list and read.

Every change bumps the account's version and emits `account.upserted` in the same transaction;
an upsert that changes nothing leaves the version alone and emits nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from feedback import postgres
from prodops.contract import AccountUpserted, Event, make_event
from prodops.http.auth import FeedbackRead, FeedbackWrite
from prodops.http.pagination import Cursor, Limit, Page, decode_cursor, page_of
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError, require_json
from prodops.http.routes import changes
from prodops.messaging import outbox
from prodops.runtime.db import Connection, request_transaction
from prodops.runtime.telemetry import current_traceparent

SERVICE = "feedback"
MAX_BULK = 1000
# Printable text only: control characters (NUL above all, which PostgreSQL refuses) are no ids.
EXTERNAL_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"
_CENTS = Decimal("0.01")

Outcome = Literal["created", "updated", "unchanged"]
ExternalId = Annotated[
    str,
    Path(min_length=1, max_length=200, pattern=EXTERNAL_ID_PATTERN, description="The CRM's id"),
]
Filter = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]*$")]

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], responses=PROBLEM_RESPONSES)


class AccountInput(BaseModel):
    """The whole state of an account as the CRM knows it; an omitted field is cleared."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, max_length=500)
    arr: Decimal = Field(
        default=Decimal(0), ge=0, le=Decimal(10**12), description="Annual recurring revenue"
    )
    segment: str | None = Field(default=None, max_length=100)
    plan: str | None = Field(default=None, max_length=100)

    @field_validator("arr")
    @classmethod
    def _to_cents(cls, arr: Decimal) -> Decimal:
        return arr.quantize(_CENTS, rounding=ROUND_HALF_EVEN)

    @field_validator("name", "segment", "plan")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value or None


class AccountUpsert(AccountInput):
    """One account of a bulk upsert."""

    external_id: str = Field(pattern=EXTERNAL_ID_PATTERN, description="The CRM's id")


class BulkAccountsInput(BaseModel):
    """Up to 1000 accounts, upserted in one transaction."""

    model_config = ConfigDict(extra="forbid")

    accounts: list[AccountUpsert] = Field(min_length=1, max_length=MAX_BULK)

    @model_validator(mode="after")
    def _distinct_ids(self) -> BulkAccountsInput:
        ids = [account.external_id for account in self.accounts]
        if len(set(ids)) != len(ids):
            raise ValueError("each external_id may appear only once")
        return self


class Account(BaseModel):
    """An account: its whole current state and version."""

    external_id: str
    name: str | None
    arr: float
    segment: str | None
    plan: str | None
    version: int
    created_at: datetime
    updated_at: datetime


class AccountOutcome(BaseModel):
    """What a bulk upsert did to one account."""

    external_id: str
    outcome: Outcome
    version: int


class BulkAccountsResult(BaseModel):
    """What a bulk upsert did, per account in the order sent, and in total."""

    created: int
    updated: int
    unchanged: int
    accounts: list[AccountOutcome]


def account_of(row: Any) -> Account:
    """The state of a stored account."""
    return Account(**{name: row[name] for name in Account.model_fields})


async def upsert_accounts(
    *, conn: Connection, workspace: str, accounts: Sequence[AccountUpsert]
) -> list[tuple[Account, Outcome]]:
    """Create or change accounts, emitting `account.upserted` for each one that changed."""
    # Rows are locked in one order by every caller, so overlapping bulk calls cannot deadlock.
    ordered = sorted(accounts, key=lambda a: a.external_id)
    rows = await conn.fetch(
        postgres.UPSERT_ACCOUNTS,
        workspace,
        [a.external_id for a in ordered],
        [a.name for a in ordered],
        [a.arr for a in ordered],
        [a.segment for a in ordered],
        [a.plan for a in ordered],
    )
    changed = {r["external_id"]: account_of(r) for r in rows}
    missing = [a.external_id for a in accounts if a.external_id not in changed]
    unchanged = {
        r["external_id"]: account_of(r)
        for r in (await conn.fetch(postgres.SELECT_ACCOUNTS, missing) if missing else [])
    }
    await outbox.add(conn, *(_upserted(workspace, account) for account in changed.values()))
    return [_outcome(a.external_id, changed, unchanged) for a in accounts]


def _outcome(
    external_id: str, changed: dict[str, Account], unchanged: dict[str, Account]
) -> tuple[Account, Outcome]:
    if external_id in changed:
        account = changed[external_id]
        return account, "created" if account.version == 1 else "updated"
    return unchanged[external_id], "unchanged"


def _upserted(workspace: str, account: Account) -> Event:
    data = AccountUpserted(**account.model_dump(exclude={"created_at"}))
    return make_event(data, service=SERVICE, workspace=workspace, traceparent=current_traceparent())


async def get_account(*, conn: Connection, external_id: str) -> Account | None:
    """One account of the transaction's workspace."""
    rows = await conn.fetch(postgres.SELECT_ACCOUNTS, [external_id])
    return account_of(rows[0]) if rows else None


async def list_accounts(
    *, conn: Connection, limit: int, after: str | None, segment: str | None, plan: str | None
) -> list[Account]:
    """Accounts by external id, after a cursor position, optionally of one segment or plan."""
    rows = await conn.fetch(postgres.LIST_ACCOUNTS, after, segment, plan, limit)
    return [account_of(r) for r in rows]


@router.put(
    "/{external_id:path}",
    response_model=Account,
    dependencies=[Depends(require_json)],
    responses={201: {"model": Account, "description": "The account was created"}},
)
async def put_account(
    request: Request,
    response: Response,
    external_id: ExternalId,
    body: AccountInput,
    principal: FeedbackWrite,
) -> Account:
    """Create or replace an account: 201 when created, 200 when updated or unchanged."""
    upsert = AccountUpsert(external_id=external_id, **body.model_dump())
    async with request_transaction(request, principal.workspace) as conn:
        [(account, outcome)] = await upsert_accounts(
            conn=conn, workspace=principal.workspace, accounts=[upsert]
        )
    if outcome == "created":
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"/v1/accounts/{quote(external_id, safe='')}"
    return account


@changes(router, "POST", "/bulk", BulkAccountsResult)
async def bulk_upsert_accounts(
    request: Request, body: BulkAccountsInput, principal: FeedbackWrite
) -> BulkAccountsResult:
    """Create or replace up to 1000 accounts in one transaction."""
    async with request_transaction(request, principal.workspace) as conn:
        results = await upsert_accounts(
            conn=conn, workspace=principal.workspace, accounts=body.accounts
        )
    outcomes = [
        AccountOutcome(external_id=a.external_id, outcome=o, version=a.version) for a, o in results
    ]
    counts = {name: sum(o.outcome == name for o in outcomes) for name in ("created", "updated")}
    return BulkAccountsResult(
        **counts, unchanged=len(outcomes) - sum(counts.values()), accounts=outcomes
    )


@router.get("", response_model=Page[Account])
async def list_accounts_route(
    request: Request,
    principal: FeedbackRead,
    *,
    limit: Limit = 50,
    cursor: Cursor = None,
    segment: Filter = None,
    plan: Filter = None,
) -> Page[Account]:
    """Accounts ordered by external id, optionally of one segment and/or plan."""
    after = _after(cursor) if cursor else None
    async with request_transaction(request, principal.workspace) as conn:
        rows = await list_accounts(
            conn=conn, limit=limit + 1, after=after, segment=segment, plan=plan
        )
    return page_of(rows, limit, lambda account: [account.external_id])


def _after(cursor: str) -> str:
    values = decode_cursor(cursor)
    if len(values) != 1 or not isinstance(values[0], str):
        raise ProblemError(400, "Bad Request", "cursor is not valid")
    return values[0]


@router.get("/{external_id:path}", response_model=Account)
async def get_account_route(
    request: Request, external_id: ExternalId, principal: FeedbackRead
) -> Account:
    """One account."""
    async with request_transaction(request, principal.workspace) as conn:
        account = await get_account(conn=conn, external_id=external_id)
    if account is None:
        raise ProblemError(404, "Not Found", "no such account in this workspace")
    return account
