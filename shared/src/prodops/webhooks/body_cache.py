"""The bodies of deliveries this process stored, kept until its normaliser takes them.

A delivery's body (about 11 kB for a GitHub issue event) went to PostgreSQL, and the normaliser
read it straight back: sent twice over the socket, and decompressed by the database in between.
The writer keeps each body here before its row can be seen, and the normaliser reads the bodies
of what this process stored from here (forgetting them once its transaction has committed), and
from the database only the others (stored by another replica or before a restart, or dropped).
"""

from __future__ import annotations

from uuid import UUID

from cachetools import FIFOCache


class BodyCache:
    """Bodies by delivery id; past `limit` bytes, the oldest are dropped first."""

    def __init__(self, limit: int) -> None:
        self._bodies: FIFOCache[UUID, bytes] = FIFOCache(limit, getsizeof=len)

    def put(self, key: UUID, body: bytes) -> None:
        """Keep `body` for `key` (bodies never change, so a second put keeps the first)."""
        # FIFOCache refuses, with ValueError, a value larger than the whole cache.
        if key not in self._bodies and len(body) <= self._bodies.maxsize:
            self._bodies[key] = body

    def get(self, key: UUID) -> bytes | None:
        """The body kept for `key`; None when there is none."""
        return self._bodies.get(key)

    def take(self, key: UUID) -> bytes | None:
        """The body kept for `key`, forgotten here; None when there is none."""
        return self._bodies.pop(key, None)

    @property
    def size(self) -> int:
        """Bytes held."""
        return int(self._bodies.currsize)
