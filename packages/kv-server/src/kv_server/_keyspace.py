"""The keyspace: every key and its value.

Rules of this module:

1. The keyspace belongs to the trio thread; commands run one at a time, so each
   command is atomic and nothing here locks.
2. Every change goes through a method of :class:`Keyspace` (``set``, ``delete``,
   ``flush``), so that whatever must see every change (the dirty counter now;
   expiry, WATCH and the AOF as they arrive) is hooked in one place.
3. A key of type string stores its value as is, with no wrapper object, so a
   million small keys cost one dict entry each.
4. ``None`` is a value (a stored null), so a missing key is :data:`MISSING`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Final

from kv_protocol.values import Key


class _Missing(enum.Enum):
    MISSING = "missing"


MISSING: Final = _Missing.MISSING


class Keyspace:
    """The data and the counters that describe how it is used."""

    __slots__ = ("data", "dirty", "hits", "misses")

    def __init__(self) -> None:
        self.data: dict[Key, object] = {}
        self.hits = 0
        """Reads that found their key (INFO keyspace_hits)."""
        self.misses = 0
        """Reads that did not (INFO keyspace_misses)."""
        self.dirty = 0
        """Changes made since start-up (persistence counts them since the last save)."""

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: Key) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[Key]:
        return iter(self.data)

    def read(self, key: Key) -> object:
        """The value of ``key`` or :data:`MISSING`, counted as a hit or a miss."""
        value = self.data.get(key, MISSING)
        if value is MISSING:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def peek(self, key: Key) -> object:
        """The value of ``key`` or :data:`MISSING`, for commands that are about to write."""
        return self.data.get(key, MISSING)

    def type_of(self, key: Key) -> str:
        """The key's type as TYPE names it: ``string`` or ``none``."""
        return "none" if self.read(key) is MISSING else "string"

    def set(self, key: Key, value: object) -> None:
        self.data[key] = value
        self.dirty += 1

    def delete(self, key: Key) -> bool:
        """Remove ``key``; whether it existed."""
        if self.data.pop(key, MISSING) is MISSING:
            return False
        self.dirty += 1
        return True

    def flush(self) -> int:
        """Remove every key; how many there were."""
        count = len(self.data)
        self.data = {}
        self.dirty += count
        return count
