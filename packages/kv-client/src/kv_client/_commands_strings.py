"""String keys (one value of any type) and counters: the table's ``string`` and ``counter``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from kv_protocol.values import Key, Value

from ._commands_base import CommandsBase, as_is, not_none, options, status


class StringCommands(CommandsBase):
    """Commands of ``kv_protocol._table_strings``."""

    @overload
    def set(self, key: Key, value: Value, *, ex: int | None = None, px: int | None = None,
            exat: int | None = None, pxat: int | None = None, keepttl: bool = False,
            nx: bool = False, xx: bool = False, get: Literal[False] = False) -> bool: ...

    @overload
    def set(self, key: Key, value: Value, *, ex: int | None = None, px: int | None = None,
            exat: int | None = None, pxat: int | None = None, keepttl: bool = False,
            nx: bool = False, xx: bool = False, get: bool) -> Any: ...

    def set(self, key: Key, value: Value, *, ex: int | None = None, px: int | None = None,
            exat: int | None = None, pxat: int | None = None, keepttl: bool = False,
            nx: bool = False, xx: bool = False, get: bool = False) -> Any:
        """Set a key to a value."""
        # Without GET: True, or False when NX or XX stopped it (the server answers
        # null). With GET: the old value, or None.
        return self._call(as_is if get else not_none, "SET", key, value, *options(
            ("EX", ex), ("PX", px), ("EXAT", exat), ("PXAT", pxat), ("KEEPTTL", keepttl),
            ("NX", nx), ("XX", xx), ("GET", get)))

    def get(self, key: Key) -> Any:
        """The value of a key, or null."""
        return self._call(as_is, "GET", key)

    def getset(self, key: Key, value: Value) -> Any:
        """Set a key and return its old value."""
        return self._call(as_is, "GETSET", key, value)

    def getdel(self, key: Key) -> Any:
        """Delete a key and return its value."""
        return self._call(as_is, "GETDEL", key)

    def getex(self, key: Key, *, ex: int | None = None, px: int | None = None,
              exat: int | None = None, pxat: int | None = None, persist: bool = False) -> Any:
        """The value of a key, changing its time to live."""
        return self._call(as_is, "GETEX", key, *options(
            ("EX", ex), ("PX", px), ("EXAT", exat), ("PXAT", pxat), ("PERSIST", persist)))

    def setnx(self, key: Key, value: Value) -> int:
        """Set a key only if it does not exist."""
        return self._call(int, "SETNX", key, value)

    def setex(self, key: Key, seconds: int, value: Value) -> bool:
        """Set a key with a time to live in seconds."""
        return self._call(status, "SETEX", key, seconds, value)

    def psetex(self, key: Key, milliseconds: int, value: Value) -> bool:
        """Set a key with a time to live in milliseconds."""
        return self._call(status, "PSETEX", key, milliseconds, value)

    def mset(self, mapping: Mapping[Key, Value]) -> bool:
        """Set several keys at once."""
        return self._call(status, "MSET", *(item for pair in mapping.items() for item in pair))

    def mget(self, *keys: Key) -> list[Any]:
        """The values of several keys."""
        values: list[Any] = self._call(as_is, "MGET", *keys)
        return values

    def append(self, key: Key, value: str | bytes) -> int:
        """Append text or bytes to a value; answer its new length."""
        return self._call(int, "APPEND", key, value)

    def strlen(self, key: Key) -> int:
        """The length of a text or bytes value."""
        return self._call(int, "STRLEN", key)

    def setrange(self, key: Key, offset: int, value: str | bytes) -> int:
        """Overwrite part of a text or bytes value at a byte offset."""
        return self._call(int, "SETRANGE", key, offset, value)

    def getrange(self, key: Key, start: int, end: int) -> str | bytes:
        """Part of a text or bytes value, by byte offsets."""
        part: str | bytes = self._call(as_is, "GETRANGE", key, start, end)
        return part

    # counters
    def incr(self, key: Key) -> int:
        """Add 1 to an integer value."""
        return self._call(int, "INCR", key)

    def decr(self, key: Key) -> int:
        """Subtract 1 from an integer value."""
        return self._call(int, "DECR", key)

    def incrby(self, key: Key, increment: int) -> int:
        """Add to an integer value."""
        return self._call(int, "INCRBY", key, increment)

    def decrby(self, key: Key, decrement: int) -> int:
        """Subtract from an integer value."""
        return self._call(int, "DECRBY", key, decrement)

    def incrbyfloat(self, key: Key, increment: float) -> float:
        """Add to a numeric value; the result is a float."""
        return self._call(float, "INCRBYFLOAT", key, increment)
