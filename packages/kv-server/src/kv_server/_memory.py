"""Used memory and ``--maxmemory``: an estimate that falls when data is deleted, and
what happens past the limit.

Rules of this module:

1. Redis compares its allocator's live bytes with maxmemory. The process's resident
   size cannot serve here: CPython's small-object allocator keeps freed arenas, so
   RSS barely falls when keys go and eviction would never end. The estimate is
   pymalloc's live blocks (``sys.getallocatedblocks``) times their measured average
   size, :data:`BLOCK_BYTES`, plus the bytes glibc's malloc holds for larger objects
   (``mallinfo2``): both fall as soon as a key's objects are freed. Without glibc
   (musl, macOS) only the blocks are counted, so large values are underestimated.
2. Only commands flagged ``denyoom`` are checked, before they run, and the estimate
   is read at most once per keyspace-clock millisecond while under the limit (about
   2 µs a read), so writes pay almost nothing until memory is tight. The whole check
   is off without ``--maxmemory``: no command is ``denyoom`` then.
3. Past the limit, ``noeviction`` answers OOM; ``allkeys-lru`` deletes the least
   recently used keys and ``volatile-ttl`` the keys nearest their deadline, until
   the estimate is under the limit, and answers OOM only when nothing is left to
   evict. Each eviction is logged to the AOF as ``DEL``, so a replay ends with the
   same keys, and counts in INFO ``evicted_keys``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from kv_protocol.errors import OomError
from kv_protocol.values import Key

from ._config import MaxmemoryPolicy

if TYPE_CHECKING:
    from ._aof import AppendOnlyFile
    from ._keyspace import Keyspace

BLOCK_BYTES: Final = 72
"""Average pymalloc block of a keyspace of small keys and values, measured against RSS
growth (about 72 bytes for 16-character keys with short string values, 60 for small
lists): the price of one live small object."""


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_in_use() -> Callable[[], int]:
    """Bytes glibc's malloc holds for live allocations, or a zero function without glibc."""
    try:
        mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c") or None).mallinfo2
    except (OSError, AttributeError):
        return lambda: 0
    mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return in_use


_MALLOC_IN_USE: Final = _malloc_in_use()


def used_memory() -> int:
    """The estimate of rule 1, in bytes."""
    return sys.getallocatedblocks() * BLOCK_BYTES + _MALLOC_IN_USE()


class MaxMemory:
    """The limit, the policy, and the counters INFO shows."""

    def __init__(self, limit: int, policy: MaxmemoryPolicy, keyspace: Keyspace,
                 measure: Callable[[], int] = used_memory) -> None:
        self.limit = limit
        self.policy = policy
        self.keyspace = keyspace
        self.measure = measure
        self.evicted = 0
        """Keys deleted to make room (INFO evicted_keys)."""
        self.refused = 0
        """Commands answered OOM (INFO oom_rejections)."""
        self._read_at = -1
        self._over = False

    def make_room(self, aof: AppendOnlyFile | None) -> None:
        """Before a command that may grow memory (rule 3).

        Raises:
            OomError: over the limit, and the policy cannot make room.
        """
        now = self.keyspace.clock()
        if not self._over and now == self._read_at:
            return
        self._read_at = now
        used = self.measure()
        self._over = used > self.limit
        if not self._over:
            return
        if self.policy is not MaxmemoryPolicy.NOEVICTION:
            used = self._evict(used, aof)
            self._over = used > self.limit
            if not self._over:
                return
        self.refused += 1
        raise OomError(f"command not allowed when used memory ({used} bytes, estimated) > "
                       f"'maxmemory' ({self.limit} bytes), policy {self.policy.value}")

    def _evict(self, used: int, aof: AppendOnlyFile | None) -> int:
        keyspace = self.keyspace
        victim = (keyspace.least_recently_used if self.policy is MaxmemoryPolicy.ALLKEYS_LRU
                  else keyspace.nearest_deadline)
        while used > self.limit:
            key: Key | None = victim()
            if key is None:
                break
            keyspace.delete(key)
            self.evicted += 1
            if aof is not None:
                aof.log(keyspace.clock(), ["DEL", key])
            used = self.measure()  # about 2 µs: worth it, so no key goes that need not
        return used

    def info(self) -> dict[str, object]:
        return {"used_memory": used_memory(), "maxmemory": self.limit,
                "maxmemory_policy": self.policy.value, "evicted_keys": self.evicted,
                "oom_rejections": self.refused}
