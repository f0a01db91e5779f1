"""What a consumer runs: a handler per event type, set-wise handlers, and hooks around a batch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from prodops.contract import Event
from prodops.runtime.db import Connection

Handler = Callable[[Connection, Event], Awaitable[None]]


@dataclass(frozen=True)
class Consumed:
    """An event of a batch, with the traceparent of its consume span."""

    event: Event
    traceparent: str | None


@dataclass(frozen=True)
class BulkHandler:
    """Applies many events of `types` at once, with the effect of their handlers in order.

    The batch's other events run first, through their handlers: events of `types` must neither
    read nor write what the others do, so that running them after the others changes nothing.
    """

    types: frozenset[str]
    apply: Callable[[Connection, Sequence[Consumed]], Awaitable[None]]


class BatchHooks(Protocol):
    """Work a consumer does once per batch, in the batch's transaction, around its handlers."""

    async def begin(self, conn: Connection, events: Sequence[Event]) -> None:
        """Before the handlers run (e.g. take the locks the batch needs, in a fixed order)."""

    async def end(self, conn: Connection, *, careful: bool) -> None:
        """After the handlers ran; raising fails the whole batch, which is redelivered.

        `careful`: the batch runs again because its fast pass raised; work here that may fail
        on its own takes a savepoint, so that the batch's events still apply. Else nothing
        needs one: raising sends the batch to the careful pass.
        """
