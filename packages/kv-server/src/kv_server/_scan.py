"""SCAN cursors: server-side positions in a snapshot of the key names.

Redis's cursor walks its hash table's buckets in reverse-binary order, which needs
access to the table's layout; a Python dict gives none, and a position in its
iteration order shifts when keys before it are deleted. So the first SCAN call
copies the key names (a C-speed list copy, some milliseconds for a million keys)
and later calls walk the copy: every key that exists throughout a scan is
returned exactly once, with no duplicates. The cost is memory while a scan is
open, bounded here: at most :data:`MAX_OPEN` cursors, each dropped after
:data:`IDLE_S` without use, the least recently used first.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from kv_protocol.values import Key

MAX_OPEN: Final = 64
IDLE_S: Final = 600.0


@dataclass(slots=True)
class Cursor:
    keys: list[Key]
    position: int = 0
    used: float = field(default_factory=time.monotonic)


class Cursors:
    """The open cursors, by number; numbers are random so that scans do not collide."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, Cursor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def start(self, keys: list[Key]) -> int:
        self._drop_idle()
        while len(self._open) >= MAX_OPEN:
            self._open.popitem(last=False)
        number = secrets.randbits(62) + 1
        self._open[number] = Cursor(keys)
        return number

    def find(self, number: int) -> Cursor | None:
        self._drop_idle()
        cursor = self._open.get(number)
        if cursor is not None:
            cursor.used = time.monotonic()
            self._open.move_to_end(number)
        return cursor

    def end(self, number: int) -> None:
        self._open.pop(number, None)

    def _drop_idle(self) -> None:
        horizon = time.monotonic() - IDLE_S
        while self._open:
            number, oldest = next(iter(self._open.items()))
            if oldest.used > horizon:
                break
            del self._open[number]
