"""A real HTTP server on 127.0.0.1 that records the webhooks it receives, for end-to-end tests.

    async with webhook_receiver() as receiver:
        ...  # subscribe receiver.url, then make something emit
        [request] = await receiver.wait_for(1)
        receiver.verify(secret, request)  # raises SignatureError unless Standard-Webhooks signed
        receiver.respond_with(500, 500)  # the next two requests get 500, later ones 200 again

Requests are parsed with h11 over a plain asyncio server: no HTTP client is mocked, so the
sender's real connection, timeout and signing code all run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import h11
import orjson

from prodops.webhooks.standard import verify

_NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it; header names are lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)

    @property
    def webhook_id(self) -> str:
        """The `webhook-id` header (the same on every retry of one message)."""
        return self.headers.get("webhook-id", "")


class WebhookReceiver:
    """What a test sees of a running receiver: its URL, the requests, and how it answers."""

    def __init__(self, url: str, status: int) -> None:
        self.url = url
        self.requests: list[ReceivedRequest] = []
        self.status = status
        self.delay_seconds = 0.0
        self._queued: deque[int] = deque()
        self._arrived = asyncio.Condition()

    def respond_with(self, *statuses: int) -> None:
        """Answer the next requests with these statuses in order, then with `status` again."""
        self._queued.extend(statuses)

    def answer_slowly(self, seconds: float) -> None:
        """Wait this long before answering each request (to make a sender time out)."""
        self.delay_seconds = seconds

    async def wait_for(self, count: int, within: float = 10.0) -> list[ReceivedRequest]:
        """The first `count` requests, once they have arrived; AssertionError after `within`."""
        try:
            async with asyncio.timeout(within), self._arrived:
                await self._arrived.wait_for(lambda: len(self.requests) >= count)
        except TimeoutError:
            raise AssertionError(
                f"{count} requests expected within {within}s; got {len(self.requests)}"
            ) from None
        return self.requests[:count]

    def verify(
        self, secret: str, request: ReceivedRequest | None = None, *, tolerance: float = 300.0
    ) -> None:
        """Raise SignatureError unless `request` (the last one) is signed with `secret`."""
        request = request or self.requests[-1]
        verify(
            [secret],
            message_id=request.headers.get("webhook-id", ""),
            timestamp=request.headers.get("webhook-timestamp", ""),
            signature_header=request.headers.get("webhook-signature", ""),
            body=request.body,
            now=time.time(),
            tolerance=tolerance,
        )

    async def _received(self, request: ReceivedRequest) -> int:
        async with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
        status = self._queued.popleft() if self._queued else self.status
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return status


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request, bytes] | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, bytes(body)
        else:  # ConnectionClosed, or PAUSED after a message we have not answered
            return None


async def _answer(writer: asyncio.StreamWriter, conn: h11.Connection, status: int) -> None:
    headers = [] if status in _NO_BODY_STATUSES else [("content-length", "0")]
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
    writer.write(conn.send(h11.EndOfMessage()) or b"")
    await writer.drain()


def _handler(receiver: WebhookReceiver, writers: set[asyncio.StreamWriter]) -> Any:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while (received := await _read_request(conn, reader)) is not None:
                head, body = received
                headers = {k.decode().lower(): v.decode() for k, v in head.headers}
                request = ReceivedRequest(
                    head.method.decode(), head.target.decode(), headers, body, time.monotonic()
                )
                await _answer(writer, conn, await receiver._received(request))
                if conn.our_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            pass  # the sender gave up (a timeout) or spoke garbage: just drop the connection
        finally:
            writers.discard(writer)
            writer.close()

    return serve


@asynccontextmanager
async def webhook_receiver(
    *, status: int = 200, path: str = "/hooks"
) -> AsyncIterator[WebhookReceiver]:
    """Serve on a free port of 127.0.0.1 for the block; `url` ends in `path`."""
    writers: set[asyncio.StreamWriter] = set()
    receiver = WebhookReceiver("", status)
    server = await asyncio.start_server(_handler(receiver, writers), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield receiver
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()
