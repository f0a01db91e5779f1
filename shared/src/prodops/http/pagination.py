"""Keyset pagination with opaque cursors: `?limit=&cursor=` in, `{items, next_cursor}` out."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import orjson
from fastapi import Query
from pydantic import BaseModel, Field

from prodops.http.problems import ProblemError

T = TypeVar("T")
CursorValue = str | int | float | None

MAX_LIMIT = 200
# Far above any real cursor; a longer one is refused before it is decoded at all.
_MAX_CURSOR_LENGTH = 2048

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"How many items to return (1-{MAX_LIMIT}).")
]
Cursor = Annotated[
    str | None,
    Query(description="The `next_cursor` of the previous page; omit it for the first page."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` to get the next page; null on the last page."
    )


def encode_cursor(values: Sequence[CursorValue]) -> str:
    """An opaque cursor holding the sort key of the last item of a page."""
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> list[Any]:
    """The sort key an `encode_cursor` cursor holds; 400 Bad Request on anything else."""
    if len(cursor) > _MAX_CURSOR_LENGTH:
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _bad_cursor() from exc
    if not isinstance(values, list) or not all(_is_key(value) for value in values):
        raise _bad_cursor()
    return values


def _is_key(value: object) -> bool:
    return value is None or isinstance(value, str | int | float)


def _bad_cursor() -> ProblemError:
    return ProblemError(400, "Bad Request", "cursor is not valid")


def page_of(rows: list[T], limit: int, key: Callable[[T], Sequence[CursorValue]]) -> Page[T]:
    """A page from up to `limit + 1` fetched rows; the extra row only says another page exists."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(key(items[-1])) if more else None)


def time_id_key(moment: datetime, ident: UUID) -> list[CursorValue]:
    """The sort key of lists ordered newest first by (timestamp, id)."""
    return [moment.isoformat(), str(ident)]


def time_id_after(cursor: str | None) -> tuple[datetime | None, UUID | None]:
    """The (timestamp, id) a `time_id_key` cursor holds, or (None, None) for the first page."""
    if cursor is None:
        return None, None
    try:
        moment, ident = decode_cursor(cursor)
        return datetime.fromisoformat(moment), UUID(ident)
    except (ValueError, TypeError) as exc:
        raise _bad_cursor() from exc
