"""The keyspace: every key, its value, and its time to live.

Rules of this module:

1. The keyspace belongs to the trio thread; commands run one at a time, so each
   command is atomic and nothing here locks.
2. Every change goes through a method of :class:`Keyspace` (``set``, ``replace``,
   ``changed``, ``delete``, ``set_deadline``, ``flush``, and expiry), so that
   whatever must see every change is hooked in one place: the dirty counter, and
   the :class:`KeyWatcher` objects registered on a key (WATCH, and clients blocked
   on a list), which hear of every change to it. Lists and hashes are changed in
   place, then reported with ``changed``.
3. A key of type string stores its value as is, with no wrapper object, so a
   million small keys cost one dict entry each. A list is a :class:`KvList` (a
   deque: O(1) at both ends), a hash a :class:`KvHash` (a dict); their classes are
   their type, so no tag is stored.
4. ``None`` is a value (a stored null), so a missing key is :data:`MISSING`.
5. Deadlines are absolute Unix times in milliseconds, as Redis keeps them, so that
   a restart or an AOF replay does not extend a time to live. A key whose deadline
   has passed is gone: every lookup checks (lazy expiry), and :mod:`._expiry`
   removes the keys nobody looks at again (active expiry).
"""

from __future__ import annotations

import enum
import itertools
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

from kv_protocol.errors import WrongTypeError
from kv_protocol.values import Key

from ._expiry import DeadlineBuckets


class _Missing(enum.Enum):
    MISSING = "missing"


MISSING: Final = _Missing.MISSING


class KvList(deque[Any]):
    """The value of a list key."""

    __slots__ = ()


class KvHash(dict[Key, Any]):
    """The value of a hash key: field -> value."""

    __slots__ = ()


CONTAINERS: Final = frozenset({KvList, KvHash})
"""The value classes that are not string values (GET on them is WRONGTYPE)."""


class KeyWatcher(Protocol):
    """Something told of every change to the keys it watches (rule 2)."""

    def touched(self, key: Key) -> None:
        """``key`` was written, deleted, expired or flushed; runs inside the change."""


def wrong_type() -> WrongTypeError:
    """Redis's error for a command applied to a key of another type."""
    return WrongTypeError("Operation against a key holding the wrong kind of value")


def type_name(value: object) -> str:
    """TYPE's name for a stored value."""
    kind = type(value)
    return "list" if kind is KvList else "hash" if kind is KvHash else "string"


def _of_kind(value: object, kind: type[Any]) -> Any:
    if value is MISSING:
        return None
    if type(value) is not kind:
        raise wrong_type()
    return value


def now_ms() -> int:
    """The clock deadlines are kept in: Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


class CommandClock:
    """The server's keyspace clock: Unix ms, read once per batch and never going back.

    Every command of a batch sees the same time, and that time is the timestamp its
    AOF record carries, so a replay that sets the clock to each record's time makes
    exactly the expiry decisions the server made (Redis's command time snapshot).
    It never goes back, so a wall clock stepped backwards cannot revive expired keys.
    """

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = now_ms()

    def __call__(self) -> int:
        return self.now

    def tick(self) -> None:
        """Read the wall clock; called before each batch and each expiry slice."""
        now = time.time_ns() // 1_000_000
        if now > self.now:
            self.now = now


class Keyspace:
    """The data, the deadlines, and the counters that describe how they are used."""

    __slots__ = ("buckets", "clock", "data", "dirty", "expired", "expires", "hits", "misses",
                 "watchers")

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        self.clock = clock
        """Unix time in milliseconds: a :class:`CommandClock` in the server, a settable one
        in tests and in AOF replay."""
        self.data: dict[Key, object] = {}
        self.expires: dict[Key, int] = {}
        """Deadline of every key that has one."""
        self.buckets = DeadlineBuckets()
        """The same deadlines grouped by time, for the background expiry."""
        self.hits = 0
        """Reads that found their key (INFO keyspace_hits)."""
        self.misses = 0
        """Reads that did not (INFO keyspace_misses)."""
        self.dirty = 0
        """Changes made since start-up (persistence counts them since the last save)."""
        self.expired = 0
        """Keys removed because their deadline passed (INFO expired_keys)."""
        self.watchers: dict[Key, list[KeyWatcher]] = {}
        """Who hears of changes to a key; usually empty, so a change tests one dict."""

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Key]:
        """Every key, expired or not; callers that answer clients check ``peek``."""
        return iter(self.data)

    # Lookups. Each one drops the key first if its deadline has passed.

    def read(self, key: Key) -> object:
        """The value of ``key`` or :data:`MISSING`, counted as a hit or a miss."""
        value = self.data.get(key, MISSING)
        if value is not MISSING and self.expires and key in self.expires and self._lapsed(key):
            value = MISSING
        if value is MISSING:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def peek(self, key: Key) -> object:
        """The value of ``key`` or :data:`MISSING`, uncounted (for writes and internal use)."""
        value = self.data.get(key, MISSING)
        if value is not MISSING and self.expires and key in self.expires and self._lapsed(key):
            return MISSING
        return value

    def read_as(self, key: Key, kind: type[Any]) -> Any:
        """The value of ``key`` if it is a ``kind`` (KvList, KvHash), None if missing."""
        return _of_kind(self.read(key), kind)

    def peek_as(self, key: Key, kind: type[Any]) -> Any:
        """``read_as`` for commands about to write: uncounted."""
        return _of_kind(self.peek(key), kind)

    def deadline(self, key: Key) -> int | None:
        """The key's deadline (Unix ms), or None; the caller has checked that it exists."""
        return self.expires.get(key)

    def least_recently_used(self) -> Key | None:
        """allkeys-lru's eviction candidate. Here the oldest written key; the keyspace of
        a server with that policy (:class:`LruKeyspace`) tracks reads too."""
        return next(iter(self.data), None)

    def nearest_deadline(self) -> Key | None:
        """volatile-ttl's eviction candidate: a key with the nearest deadline, or None."""
        return self.buckets.soonest()

    def random_key(self) -> Key | None:
        """A key chosen uniformly at random, or None; O(n), as dicts have no random access."""
        for _ in range(100):
            if not self.data:
                return None
            index = random.randrange(len(self.data))
            key = next(itertools.islice(self.data, index, None))
            if self.peek(key) is not MISSING:
                return key
        return None

    # Watchers.

    def watch(self, key: Key, watcher: KeyWatcher) -> None:
        self.watchers.setdefault(key, []).append(watcher)

    def unwatch(self, key: Key, watcher: KeyWatcher) -> None:
        watchers = self.watchers.get(key)
        if watchers is not None:
            watchers.remove(watcher)
            if not watchers:
                del self.watchers[key]

    def _touch(self, key: Key) -> None:
        for watcher in self.watchers.get(key, ()):
            watcher.touched(key)

    # Changes.

    def set(self, key: Key, value: object) -> None:
        """Store ``value`` under ``key``, replacing any old value and its deadline (SET)."""
        self.data[key] = value
        if self.expires and key in self.expires:
            self.buckets.discard(key, self.expires.pop(key))
        self.dirty += 1
        if self.watchers:
            self._touch(key)

    def replace(self, key: Key, value: object) -> None:
        """Store a value, keeping the key's deadline if it has one (INCR, APPEND).

        A missing key has no deadline (lookups drop expired keys with theirs), so
        for a new key this is ``set``.
        """
        self.data[key] = value
        self.dirty += 1
        if self.watchers:
            self._touch(key)

    def load(self, key: Key, value: object, deadline: int | None) -> None:
        """Store an entry read from a snapshot (start-up: nothing to count or replace)."""
        self.data[key] = value
        if deadline is not None:
            self.expires[key] = deadline
            self.buckets.add(key, deadline)

    def add(self, key: Key, value: KvList | KvHash) -> None:
        """Store a new list or hash under a key that is missing; it is filled next."""
        self.data[key] = value

    def changed(self, key: Key, value: KvList | KvHash) -> None:
        """Report a list or hash changed in place; an empty one is deleted, as in Redis."""
        self.dirty += 1
        if not value:
            self.delete(key)
        elif self.watchers:
            self._touch(key)

    def delete(self, key: Key) -> bool:
        """Remove ``key``; whether it existed (an expired key did not)."""
        if self.peek(key) is MISSING:
            return False
        self._remove(key)
        self.dirty += 1
        return True

    def set_deadline(self, key: Key, deadline: int | None) -> None:
        """Give an existing key a deadline (Unix ms), or remove it with None."""
        old = self.expires.pop(key, None)
        if old is not None:
            self.buckets.discard(key, old)
        if deadline is not None:
            self.expires[key] = deadline
            self.buckets.add(key, deadline)
        self.dirty += 1
        if self.watchers:
            self._touch(key)

    def flush(self) -> int:
        """Remove every key; how many there were."""
        count = len(self.data)
        for key in [key for key in self.watchers if key in self.data]:
            self._touch(key)
        self.data = {}
        self.expires = {}
        self.buckets = DeadlineBuckets()
        self.dirty += count
        return count

    def expire_due(self, budget_s: float) -> bool:
        """Remove keys whose deadline passed, for at most ``budget_s``; whether any remain."""
        now = self.clock()
        clock = time.perf_counter
        stop = clock() + budget_s
        for batch in self.buckets.due(now):
            # A key is in the bucket of its current deadline, and these buckets' time
            # has passed: every key here is due.
            for key in batch:
                self._remove(key)
            self.expired += len(batch)
            self.dirty += len(batch)
            if clock() >= stop:
                return self.buckets.has_due(now)
        return False

    def _lapsed(self, key: Key) -> bool:
        """Drop ``key`` if its deadline has passed; whether it did."""
        if self.expires[key] > self.clock():
            return False
        self._remove(key)
        self.expired += 1
        self.dirty += 1
        return True

    def _remove(self, key: Key) -> None:
        del self.data[key]
        deadline = self.expires.pop(key, None)
        if deadline is not None:
            self.buckets.discard(key, deadline)
        if self.watchers:
            self._touch(key)


class LruKeyspace(Keyspace):
    """A keyspace that also orders its keys by last use, for ``--maxmemory-policy
    allkeys-lru``: only a server with that policy pays for it (an ordered-dict move per
    lookup and write), and eviction takes the least recently used key in O(1).
    """

    __slots__ = ("recency",)

    def __init__(self, clock: Callable[[], int] = now_ms) -> None:
        super().__init__(clock)
        self.recency: OrderedDict[Key, None] = OrderedDict()

    def _used(self, key: Key) -> None:
        recency = self.recency
        if key in recency:
            recency.move_to_end(key)
        else:
            recency[key] = None

    def read(self, key: Key) -> object:
        value = super().read(key)
        if value is not MISSING:
            self._used(key)
        return value

    def set(self, key: Key, value: object) -> None:
        super().set(key, value)
        self._used(key)

    def replace(self, key: Key, value: object) -> None:
        super().replace(key, value)
        self._used(key)

    def add(self, key: Key, value: KvList | KvHash) -> None:
        super().add(key, value)
        self._used(key)

    def load(self, key: Key, value: object, deadline: int | None) -> None:
        super().load(key, value, deadline)
        self.recency[key] = None

    def changed(self, key: Key, value: KvList | KvHash) -> None:
        super().changed(key, value)
        if value:
            self._used(key)

    def flush(self) -> int:
        self.recency.clear()
        return super().flush()

    def least_recently_used(self) -> Key | None:
        return next(iter(self.recency), None)

    def _remove(self, key: Key) -> None:
        super()._remove(key)
        self.recency.pop(key, None)
