"""Bulk import of historical feedback as NDJSON, streamed: memory stays flat however long the file.

Lines are read as they arrive and committed in batches (500 lines or 4 MiB, whichever comes
first), one transaction each, with a `feedback.received` event per new item. Items are keyed
('import', external_id): a line whose external id was imported before is left as it is and
counted `unchanged`, so a repeated import creates nothing. Call it without `Idempotency-Key`: that
middleware buffers the whole body to hash it, and the external ids already make a retry safe.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError, field_validator

from feedback import postgres, service
from feedback.domain import FeedbackInput, roadmap_keys
from feedback.service import state_of
from prodops.contract import Event, FeedbackReceived, make_event, new_id, utcnow
from prodops.http.auth import FeedbackWrite
from prodops.http.problems import PROBLEM_RESPONSES, ProblemError
from prodops.messaging import outbox
from prodops.runtime.db import Connection, Pool, workspace_transaction
from prodops.runtime.telemetry import current_traceparent

MEDIA_TYPES = frozenset({"application/x-ndjson", "application/ndjson"})
# A line holds one item, so it may be as large as one POST /v1/feedback body may be.
MAX_LINE_BYTES = 1024 * 1024
BATCH_LINES = 500
BATCH_BYTES = 4 * 1024 * 1024
MAX_REPORTED_ERRORS = 1000
_CLOCK_SKEW = timedelta(minutes=5)
_BOM = b"\xef\xbb\xbf"

router = APIRouter(prefix="/v1/feedback", tags=["feedback"], responses=PROBLEM_RESPONSES)


class ImportLine(FeedbackInput):
    """One line of an import: a feedback item with its external id and, optionally, its date."""

    external_id: str = Field(min_length=1, max_length=200)
    created_at: datetime | None = Field(
        default=None, description="When the customer gave it; the import time when omitted"
    )

    @field_validator("created_at")
    @classmethod
    def _in_the_past(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        # A date without an offset is taken as UTC: exports of support desks often lack one.
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        if value > utcnow() + _CLOCK_SKEW:
            raise ValueError("created_at must not be in the future")
        return value


class LineError(BaseModel):
    """Why one line was not imported."""

    line: int = Field(description="1-based line number in the file")
    reason: str


class ImportReport(BaseModel):
    """What an import did: lines received (blank ones aside), items created, lines skipped."""

    received: int = 0
    created: int = 0
    unchanged: int = Field(default=0, description="Lines whose external id was imported before")
    errors: list[LineError] = Field(default_factory=list)
    errors_truncated: bool = Field(
        default=False, description=f"More than {MAX_REPORTED_ERRORS} lines were bad"
    )

    def reject(self, line: int, reason: str) -> None:
        """Record a bad line; only the first MAX_REPORTED_ERRORS are listed."""
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line=line, reason=reason))
        else:
            self.errors_truncated = True


class LineSplitter:
    """Cuts a byte stream into numbered lines; a line over the limit comes out as None, unkept."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.number = 0
        self.partial = bytearray()
        self.overlong = False

    def feed(self, chunk: bytes) -> list[tuple[int, bytes | None]]:
        """The lines this chunk completes."""
        *complete, rest = chunk.split(b"\n")
        lines = [self._finish(piece) for piece in complete]
        if not self.overlong:
            self.partial += rest
        if len(self.partial) > self.max_line_bytes:
            # Only the fact is kept: the rest of the line is dropped as it arrives.
            self.partial.clear()
            self.overlong = True
        return lines

    def end(self) -> list[tuple[int, bytes | None]]:
        """The last line, when the stream does not end with a newline."""
        return [self._finish(b"")] if self.partial or self.overlong else []

    def _finish(self, piece: bytes) -> tuple[int, bytes | None]:
        self.number += 1
        line: bytes | None = None
        if not self.overlong and len(self.partial) + len(piece) <= self.max_line_bytes:
            line = bytes(self.partial + piece) if self.partial else piece
        self.partial.clear()
        self.overlong = False
        return self.number, line


def parse_line(line: bytes) -> ImportLine | str:
    """The feedback a line holds, or why it holds none."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON: {exc}"
    if not isinstance(value, dict):
        return "a line must be a JSON object"
    # PostgreSQL text cannot hold NUL; the escape is the only way JSON can carry one.
    if b"\\u0000" in line and _has_nul(value):
        return "text must not contain NUL characters (\\u0000)"
    try:
        return ImportLine.model_validate(value)
    except ValidationError as exc:
        return "; ".join(_describe(error) for error in exc.errors()[:5])


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return isinstance(value, list) and any(_has_nul(v) for v in value)


def _describe(error: Any) -> str:
    # Location and message only: the input is the caller's own data and may be large.
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


@dataclass
class _Batch:
    items: list[ImportLine] = field(default_factory=list)
    size: int = 0

    def add(self, item: ImportLine, size: int) -> bool:
        """Add an item; whether the batch is now full."""
        self.items.append(item)
        self.size += size
        return len(self.items) >= BATCH_LINES or self.size >= BATCH_BYTES


async def import_feedback(
    *, pool: Pool, role: str, workspace: str, chunks: AsyncIterable[bytes]
) -> ImportReport:
    """Import NDJSON feedback from a byte stream, committing valid lines batch by batch."""
    report = ImportReport()
    splitter = LineSplitter()
    batch = _Batch()
    async for chunk in chunks:
        for number, line in splitter.feed(chunk):
            if _take(report, batch, number, line):
                await _commit(pool, role, workspace, batch, report)
    for number, line in splitter.end():
        _take(report, batch, number, line)
    await _commit(pool, role, workspace, batch, report)
    return report


def _take(report: ImportReport, batch: _Batch, number: int, line: bytes | None) -> bool:
    """Check one line into the batch or the errors; whether the batch is now full."""
    if line is not None:
        # Editors on Windows start a UTF-8 file with a byte order mark, which is no JSON.
        line = line.removeprefix(_BOM) if number == 1 else line
        if not line.strip():
            return False
    report.received += 1
    if line is None:
        report.reject(number, f"line too long (over {MAX_LINE_BYTES} bytes)")
        return False
    item = parse_line(line)
    if isinstance(item, str):
        report.reject(number, item)
        return False
    return batch.add(item, len(line))


async def _commit(
    pool: Pool, role: str, workspace: str, batch: _Batch, report: ImportReport
) -> None:
    """Store a batch in one transaction, with an event per new item, and start a new one."""
    if not batch.items:
        return
    items = batch.items
    async with workspace_transaction(pool, workspace, role=role) as conn:
        rows = await conn.fetch(postgres.IMPORT_FEEDBACK, workspace, *_columns(items))
        await _announce(conn, workspace, rows)
    report.created += len(rows)
    report.unchanged += len(items) - len(rows)
    batch.items, batch.size = [], 0


def _columns(items: list[ImportLine]) -> list[list[Any]]:
    """The batch column by column, in the order IMPORT_FEEDBACK unnests them."""
    return [
        [new_id() for _ in items],
        [i.external_id for i in items],
        [i.url for i in items],
        [i.title for i in items],
        [i.body for i in items],
        [
            orjson.dumps(i.customer.model_dump(exclude_none=True)).decode() if i.customer else None
            for i in items
        ],
        [i.account_external_id for i in items],
        [orjson.dumps(i.tags).decode() for i in items],
        [i.priority for i in items],
        [i.created_at for i in items],
    ]


async def _announce(conn: Connection, workspace: str, rows: list[Any]) -> None:
    """Emit `feedback.received` for new items; those tagged `roadmap-<key>` link as the API's do."""
    plain = []
    for row in rows:
        if roadmap_keys(row["tags"]):
            # Rare in bulk: the per-item path links the tags and emits the events in order.
            await service.announce_new(conn, workspace, row)
        else:
            plain.append(row)
    traceparent = current_traceparent()
    await outbox.add(conn, *(_received(workspace, row, traceparent) for row in plain))


def _received(workspace: str, row: Any, traceparent: str | None) -> Event:
    data = FeedbackReceived.model_validate(state_of(row), from_attributes=True)
    return make_event(data, service=service.SERVICE, workspace=workspace, traceparent=traceparent)


@router.post(
    "/import",
    response_model=ImportReport,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def import_feedback_route(request: Request, principal: FeedbackWrite) -> ImportReport:
    """Import feedback from NDJSON, one item per line; each bad line is reported, not fatal."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in MEDIA_TYPES:
        raise ProblemError(415, "Unsupported Media Type", "send the body as application/x-ndjson")
    settings = request.app.state.settings
    return await import_feedback(
        pool=request.app.state.pool,
        role=settings.app_role,
        workspace=principal.workspace,
        chunks=request.stream(),
    )
