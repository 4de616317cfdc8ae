"""Lists, kv's queues: the table's ``list`` family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

from kv_protocol.values import Key, Value

from ._commands_base import CommandsBase, End, Where, as_is, options, status


class ListCommands(CommandsBase):
    """Commands of ``kv_protocol._table_lists``."""

    def lpush(self, key: Key, *elements: Value) -> int:
        """Push elements onto the head of a list."""
        return self._call(int, "LPUSH", key, *elements)

    def rpush(self, key: Key, *elements: Value) -> int:
        """Push elements onto the tail of a list."""
        return self._call(int, "RPUSH", key, *elements)

    def lpushx(self, key: Key, *elements: Value) -> int:
        """Push onto the head of a list only if it exists."""
        return self._call(int, "LPUSHX", key, *elements)

    def rpushx(self, key: Key, *elements: Value) -> int:
        """Push onto the tail of a list only if it exists."""
        return self._call(int, "RPUSHX", key, *elements)

    def lpop(self, key: Key, count: int | None = None) -> Any:
        """Remove and return elements from the head of a list."""
        return self._call(as_is, "LPOP", key, *(() if count is None else (count,)))

    def rpop(self, key: Key, count: int | None = None) -> Any:
        """Remove and return elements from the tail of a list."""
        return self._call(as_is, "RPOP", key, *(() if count is None else (count,)))

    def llen(self, key: Key) -> int:
        """The length of a list."""
        return self._call(int, "LLEN", key)

    def lindex(self, key: Key, index: int) -> Any:
        """The element at an index, or null."""
        return self._call(as_is, "LINDEX", key, index)

    def lrange(self, key: Key, start: int, stop: int) -> list[Any]:
        """The elements between two indices, both included."""
        elements: list[Any] = self._call(as_is, "LRANGE", key, start, stop)
        return elements

    def lset(self, key: Key, index: int, element: Value) -> bool:
        """Replace the element at an index."""
        return self._call(status, "LSET", key, index, element)

    def lrem(self, key: Key, count: int, element: Value) -> int:
        """Remove elements equal to a value."""
        return self._call(int, "LREM", key, count, element)

    def ltrim(self, key: Key, start: int, stop: int) -> bool:
        """Keep only the elements between two indices."""
        return self._call(status, "LTRIM", key, start, stop)

    def linsert(self, key: Key, where: Where, pivot: Value, element: Value) -> int:
        """Insert an element before or after another."""
        return self._call(int, "LINSERT", key, where, pivot, element)

    @overload
    def lpos(self, key: Key, element: Value, *, rank: int | None = None, count: None = None,
             maxlen: int | None = None) -> int | None: ...

    @overload
    def lpos(self, key: Key, element: Value, *, rank: int | None = None, count: int,
             maxlen: int | None = None) -> list[int]: ...

    def lpos(self, key: Key, element: Value, *, rank: int | None = None, count: int | None = None,
             maxlen: int | None = None) -> int | list[int] | None:
        """The index of matching elements."""
        # Without count: an index or None. With count: a list of indices, empty when
        # nothing matches or the key is missing.
        found: int | list[int] | None = self._call(as_is, "LPOS", key, element, *options(
            ("RANK", rank), ("COUNT", count), ("MAXLEN", maxlen)))
        return found

    def lmove(self, source: Key, destination: Key, wherefrom: End = "LEFT",
              whereto: End = "RIGHT") -> Any:
        """Pop an element from one list and push it onto another."""
        return self._call(as_is, "LMOVE", source, destination, wherefrom, whereto)

    def rpoplpush(self, source: Key, destination: Key) -> Any:
        """Pop from a list's tail, push onto another's head."""
        return self._call(as_is, "RPOPLPUSH", source, destination)

    def lpoprpush(self, source: Key, destination: Key) -> Any:
        """Pop from a list's head, push onto another's tail."""
        return self._call(as_is, "LPOPRPUSH", source, destination)

    # Blocking pops: the server holds the reply until an element comes or the timeout
    # (seconds, 0 for ever) passes, and the client waits that long on top of its own
    # timeout (_core.request_timeout). None when the timeout passed.
    def blpop(self, keys: Key | Sequence[Key], timeout: float = 0) -> tuple[Key, Any] | None:
        """Pop from the head of the first non-empty list, or wait."""
        return self._call(key_and_element, "BLPOP", *key_list(keys), timeout)

    def brpop(self, keys: Key | Sequence[Key], timeout: float = 0) -> tuple[Key, Any] | None:
        """Pop from the tail of the first non-empty list, or wait."""
        return self._call(key_and_element, "BRPOP", *key_list(keys), timeout)

    def blmove(self, source: Key, destination: Key, timeout: float, wherefrom: End = "LEFT",
               whereto: End = "RIGHT") -> Any:
        """LMOVE, waiting for the source to have an element."""
        return self._call(as_is, "BLMOVE", source, destination, wherefrom, whereto, timeout)

    def brpoplpush(self, source: Key, destination: Key, timeout: float = 0) -> Any:
        """RPOPLPUSH, waiting for the source to have an element."""
        return self._call(as_is, "BRPOPLPUSH", source, destination, timeout)

    def blpoprpush(self, source: Key, destination: Key, timeout: float = 0) -> Any:
        """LPOPRPUSH, waiting for the source to have an element."""
        return self._call(as_is, "BLPOPRPUSH", source, destination, timeout)


def key_list(keys: Key | Sequence[Key]) -> Sequence[Key]:
    """One key or several: text and bytes are sequences too, so a lone key is told apart."""
    return (keys,) if isinstance(keys, str | bytes) else keys


def key_and_element(reply: Any) -> tuple[Key, Any] | None:
    """BLPOP's ``[key, element]`` as a pair, or None when the timeout passed."""
    if reply is None:
        return None
    key, element = reply
    return key, element
