"""Commands on keys of any type and their time to live: the table's ``keyspace`` and ``expiry``."""

from __future__ import annotations

from collections.abc import Iterator

from kv_protocol.values import Key

from ._commands_base import CommandsBase, ExpireCondition, as_is, options, scan_reply, status


class KeyCommands(CommandsBase):
    """Commands of ``kv_protocol._table_keys``."""

    def delete(self, *keys: Key) -> int:
        """Delete keys; answer how many existed."""
        return self._call(int, "DEL", *keys)

    def unlink(self, *keys: Key) -> int:
        """Delete keys, as DEL does; answer how many existed."""
        return self._call(int, "UNLINK", *keys)

    def exists(self, *keys: Key) -> int:
        """Count how many of the keys exist."""
        return self._call(int, "EXISTS", *keys)

    def touch(self, *keys: Key) -> int:
        """Count how many of the keys exist, as a read of each."""
        return self._call(int, "TOUCH", *keys)

    def type(self, key: Key) -> str:
        """The type of a key: string, list, hash, or none."""
        return self._call(str, "TYPE", key)

    def keys(self, pattern: str | bytes = "*") -> list[Key]:
        """Every key matching a glob pattern."""
        found: list[Key] = self._call(as_is, "KEYS", pattern)
        return found

    def scan(self, cursor: int = 0, *, match: str | bytes | None = None, count: int | None = None,
             type: str | None = None) -> tuple[int, list[Key]]:
        """Iterate over the keys a few at a time."""
        return self._call(scan_reply, "SCAN", cursor,
                          *options(("MATCH", match), ("COUNT", count), ("TYPE", type)))

    def scan_iter(self, match: str | bytes | None = None, count: int | None = None,
                  type: str | None = None) -> Iterator[Key]:
        """Every key, from SCAN calls that follow the cursor until it is 0.

        Args:
            match, count, type: SCAN's MATCH, COUNT and TYPE options.

        Raises:
            NoKeyError: the server dropped the cursor (it keeps at most 64, each
                for 10 minutes after its last use); the scan must start again.
        """
        cursor = 0
        while True:
            cursor, found = self.scan(cursor, match=match, count=count, type=type)
            yield from found
            if cursor == 0:
                return

    def randomkey(self) -> Key | None:
        """A random key, or null when there are none."""
        found: Key | None = self._call(as_is, "RANDOMKEY")
        return found

    def rename(self, key: Key, newkey: Key) -> bool:
        """Rename a key, replacing any key of the new name."""
        return self._call(status, "RENAME", key, newkey)

    def renamenx(self, key: Key, newkey: Key) -> int:
        """Rename a key only if the new name is free."""
        return self._call(int, "RENAMENX", key, newkey)

    def copy(self, source: Key, destination: Key, *, replace: bool = False) -> int:
        """Copy a key's value and time to live to another key."""
        return self._call(int, "COPY", source, destination, *options(("REPLACE", replace)))

    def dbsize(self) -> int:
        """The number of keys."""
        return self._call(int, "DBSIZE")

    def object_encoding(self, key: Key) -> str | None:
        """How the server stores a key's value."""
        encoding: str | None = self._call(as_is, "OBJECT", "ENCODING", key)
        return encoding

    # expiry
    def expire(self, key: Key, seconds: int, condition: ExpireCondition | None = None) -> int:
        """Set a key's time to live in seconds."""
        return self._call(int, "EXPIRE", key, seconds, *_condition(condition))

    def pexpire(self, key: Key, milliseconds: int, condition: ExpireCondition | None = None) -> int:
        """Set a key's time to live in milliseconds."""
        return self._call(int, "PEXPIRE", key, milliseconds, *_condition(condition))

    def expireat(self, key: Key, when: int, condition: ExpireCondition | None = None) -> int:
        """Set when a key expires, as a Unix time in seconds."""
        return self._call(int, "EXPIREAT", key, when, *_condition(condition))

    def pexpireat(self, key: Key, when: int, condition: ExpireCondition | None = None) -> int:
        """Set when a key expires, as a Unix time in milliseconds."""
        return self._call(int, "PEXPIREAT", key, when, *_condition(condition))

    def ttl(self, key: Key) -> int:
        """A key's remaining time to live in seconds."""
        return self._call(int, "TTL", key)

    def pttl(self, key: Key) -> int:
        """A key's remaining time to live in milliseconds."""
        return self._call(int, "PTTL", key)

    def expiretime(self, key: Key) -> int:
        """When a key expires, as a Unix time in seconds."""
        return self._call(int, "EXPIRETIME", key)

    def pexpiretime(self, key: Key) -> int:
        """When a key expires, as a Unix time in milliseconds."""
        return self._call(int, "PEXPIRETIME", key)

    def persist(self, key: Key) -> int:
        """Remove a key's time to live."""
        return self._call(int, "PERSIST", key)


def _condition(condition: ExpireCondition | None) -> tuple[str, ...]:
    return () if condition is None else (condition,)
