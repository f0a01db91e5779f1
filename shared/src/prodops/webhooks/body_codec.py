"""Delivery bodies as stored: compressed with lz4 by the service, not by PostgreSQL.

PostgreSQL compresses a value over 2 kB itself, with pglz unless the server was built with lz4
(the embedded one that `make up` runs was not). pglz costs the database, which every replica
shares, several times what lz4 costs the service; compressed here, the database only stores the
result (migration 0008 turns its own compression off for
the column). `body_codec` says how each row's body is stored: rows written before are `identity`.
"""

from __future__ import annotations

from typing import Literal

import lz4.block

Codec = Literal["identity", "lz4"]


def encode(body: bytes) -> tuple[Codec, bytes]:
    """The body as it is stored: lz4 where that makes it smaller, else as it came."""
    packed: bytes = lz4.block.compress(body, store_size=True)
    if len(packed) < len(body):
        return "lz4", packed
    return "identity", body


def decode(codec: str, stored: bytes) -> bytes:
    """The body as the vendor sent it."""
    if codec == "lz4":
        body: bytes = lz4.block.decompress(stored)
        return body
    if codec == "identity":
        return stored
    raise ValueError(f"unknown body codec {codec!r}")
