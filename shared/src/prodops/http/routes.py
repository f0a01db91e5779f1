"""The route shapes every service's API shares: create, change, delete, and newest-first pages.

A create answers 201 and refuses a body that is not JSON; a change (PATCH, PUT or a POST action)
refuses the same; a delete answers 204 with no body. Declaring them once keeps the status codes
and the 415 check the same on every resource.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Response, status
from fastapi.types import DecoratedCallable

from prodops.http.pagination import Page, page_of, time_id_key
from prodops.http.problems import require_json

__all__ = ["JSON_BODY", "Created", "changes", "creates", "deletes", "newest_first"]

JSON_BODY = [Depends(require_json)]


class Created(Protocol):
    """A row listed newest first: by when it was created, then by id."""

    @property
    def created_at(self) -> datetime:
        """When it was created."""

    @property
    def id(self) -> UUID:
        """Its id, the tie-breaker."""


R = TypeVar("R", bound=Created)


def creates(
    router: APIRouter, model: Any, path: str = "", **extra: Any
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A `POST` that creates from a JSON body and answers 201 with `model`."""
    return router.post(
        path,
        status_code=status.HTTP_201_CREATED,
        response_model=model,
        dependencies=JSON_BODY,
        **extra,
    )


def changes(
    router: APIRouter, method: Literal["PATCH", "PUT", "POST"], path: str, model: Any
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A route that changes a resource from a JSON body and answers it as `model`."""
    return router.api_route(path, methods=[method], response_model=model, dependencies=JSON_BODY)


def deletes(router: APIRouter, path: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A `DELETE` that answers 204 with no body."""
    return router.delete(path, status_code=status.HTTP_204_NO_CONTENT, response_class=Response)


def newest_first(rows: list[R], limit: int) -> Page[R]:
    """A page of rows fetched newest first (up to `limit + 1`), its cursor by (created_at, id)."""
    return page_of(rows, limit, lambda row: time_id_key(row.created_at, row.id))
