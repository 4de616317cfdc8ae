"""Active expiry: removing keys whose deadline passed when nobody reads them again.

Redis samples random keys that have a deadline, because its hash table knows
nothing about time. kv groups the deadlines into buckets of 128 ms (a timer
wheel): the background task visits only buckets whose time has fully passed, so
every key it looks at is due, none is sampled in vain, and the memory of a
million keys that expire together comes back within a fraction of a second of
their deadline. It works in slices of :data:`SLICE_S` and yields to the event
loop between them, so clients are never held up for longer than one slice.
Keys read before the task reaches them are dropped at once by the lookup itself
(lazy expiry, in :mod:`._keyspace`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

import trio

from kv_protocol.values import Key

if TYPE_CHECKING:
    from ._keyspace import Keyspace

BUCKET_BITS: Final = 7
"""Deadlines ``d`` and ``e`` share a bucket when ``d >> 7 == e >> 7`` (128 ms)."""
BATCH: Final = 128
"""Keys taken from a bucket between two looks at the clock."""
SLICE_S: Final = 0.002
"""Longest stretch of expiry work before the event loop gets its turn."""
IDLE_S: Final = 0.1
"""How long the task sleeps when nothing is due (Redis's hz 10)."""


class DeadlineBuckets:
    """Keys grouped by deadline bucket, and a heap of the bucket numbers.

    A key is in exactly the bucket of its current deadline: changing or removing
    a deadline discards it from the old one, so nothing stale piles up. Buckets
    left empty are dropped; their numbers may linger in the heap (skipped when
    reached) until it is rebuilt, which happens when it has grown to twice the
    buckets in use, so memory follows the deadlines that exist.
    """

    __slots__ = ("order", "sets")

    def __init__(self) -> None:
        self.sets: dict[int, set[Key]] = {}
        self.order: list[int] = []

    def add(self, key: Key, deadline: int) -> None:
        number = deadline >> BUCKET_BITS
        bucket = self.sets.get(number)
        if bucket is None:
            bucket = self.sets[number] = set()
            heapq.heappush(self.order, number)
            if len(self.order) > 2 * len(self.sets) + 64:
                self.order = list(self.sets)
                heapq.heapify(self.order)
        bucket.add(key)

    def discard(self, key: Key, deadline: int) -> None:
        number = deadline >> BUCKET_BITS
        bucket = self.sets.get(number)
        if bucket is not None:
            bucket.discard(key)
            if not bucket:
                del self.sets[number]

    def has_due(self, now: int) -> bool:
        """Whether a bucket whose time has fully passed (by ``now``, Unix ms) remains."""
        return bool(self.order) and (self.order[0] + 1) << BUCKET_BITS <= now

    def due(self, now: int) -> Iterator[list[Key]]:
        """Batches of keys taken out of the buckets whose time has fully passed.

        Stopping early leaves the keys not yet taken where they were.
        """
        order, sets = self.order, self.sets
        while order and (order[0] + 1) << BUCKET_BITS <= now:
            bucket = sets.get(order[0])
            while bucket:
                yield [bucket.pop() for _ in range(min(len(bucket), BATCH))]
            sets.pop(order[0], None)
            heapq.heappop(order)

    def soonest(self) -> Key | None:
        """A key of the earliest bucket (a deadline within 128 ms of the nearest), or None:
        volatile-ttl's eviction candidate."""
        order, sets = self.order, self.sets
        while order and order[0] not in sets:  # numbers of buckets since emptied
            heapq.heappop(order)
        return next(iter(sets[order[0]])) if order else None

    def __len__(self) -> int:
        """Keys in all buckets."""
        return sum(map(len, self.sets.values()))


async def expire_forever(keyspace: Keyspace, tick: Callable[[], None]) -> None:
    """The background task: remove due keys in short slices, sleep when none are due.

    ``tick`` advances the keyspace's clock (:class:`~kv_server._keyspace.CommandClock`).
    """
    while True:
        tick()
        more = keyspace.expire_due(SLICE_S)
        await trio.sleep(0 if more else IDLE_S)
