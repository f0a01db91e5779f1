"""The baseline server: bare FastAPI endpoints under the same uvicorn settings as `prodops serve`.

`POST /webhooks/{provider}/{source_id}` reads the body and answers 202; `GET /bare/{key}` answers a
small JSON document. Run with `python -m bench.baseline --port N`. With `--null` it is instead a raw
asyncio server answering every request with an empty 202 at once: the fastest server there can be,
used to show how much the load generator itself can send.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

app = FastAPI(title="bench baseline")


@app.post("/webhooks/{provider}/{source_id}", status_code=202)
async def receive(request: Request, provider: str, source_id: str) -> Response:  # noqa: ARG001
    """Read the whole body, answer 202: the least a webhook endpoint can do."""
    await request.body()
    return Response(status_code=202)


@app.get("/bare/{key}")
async def bare(key: str) -> Response:
    """A small JSON answer: the least a read endpoint can do."""
    return JSONResponse({"key": key, "status": "on_track", "score": 50.0})


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Process up."""
    return {"status": "ok"}


_EMPTY_202 = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"


class _NullProtocol(asyncio.Protocol):
    """Answers each complete request (headers plus Content-Length body) with an empty 202."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            length = int(head[at + 17 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(_EMPTY_202)


async def _serve_null(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_NullProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve the baseline exactly as `prodops serve` serves a service (or the null server)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--null", action="store_true")
    args = parser.parse_args()
    if args.null:
        import uvloop

        uvloop.run(_serve_null(args.port))
        return
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, proxy_headers=True
    )


if __name__ == "__main__":
    main()
