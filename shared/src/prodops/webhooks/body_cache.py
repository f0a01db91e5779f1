"""The bodies of deliveries this process stored, kept until its normaliser takes them.

A delivery's body (about 11 kB for a GitHub issue event) went to PostgreSQL, and the normaliser
read it straight back: sent twice over the socket, and decompressed by the database in between.
The writer keeps each body here before its row can be seen, and the normaliser reads the bodies
of what this process stored from here (forgetting them once its transaction has committed), and
from the database only the others (stored by another replica or before a restart, or dropped).
"""

from __future__ import annotations

from uuid import UUID


class BodyCache:
    """Bodies by delivery id; past `limit` bytes, the oldest are dropped first."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._bodies: dict[UUID, bytes] = {}  # in the order they were put
        self._size = 0

    def put(self, key: UUID, body: bytes) -> None:
        """Keep `body` for `key` (bodies never change, so a second put keeps the first)."""
        if key in self._bodies or len(body) > self._limit:
            return
        self._bodies[key] = body
        self._size += len(body)
        while self._size > self._limit:
            self._size -= len(self._bodies.pop(next(iter(self._bodies))))

    def get(self, key: UUID) -> bytes | None:
        """The body kept for `key`; None when there is none."""
        return self._bodies.get(key)

    def take(self, key: UUID) -> bytes | None:
        """The body kept for `key`, forgotten here; None when there is none."""
        body = self._bodies.pop(key, None)
        if body is not None:
            self._size -= len(body)
        return body

    @property
    def size(self) -> int:
        """Bytes held."""
        return self._size
