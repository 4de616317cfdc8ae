"""Hashes, a map of field -> value under one key: the table's ``hash`` family.

Fields are text or bytes, as keys are; their values are any value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

from kv_protocol.values import Key, Value

from ._commands_base import CommandsBase, as_is

Field: TypeAlias = str | bytes
"""A hash field's name."""


class HashCommands(CommandsBase):
    """Commands of ``kv_protocol._table_hashes``."""

    def hset(self, key: Key, mapping: Mapping[Field, Value]) -> int:
        """Set fields of a hash."""
        return self._call(int, "HSET", key, *(item for pair in mapping.items() for item in pair))

    def hsetnx(self, key: Key, field: Field, value: Value) -> int:
        """Set a field of a hash only if it does not exist."""
        return self._call(int, "HSETNX", key, field, value)

    def hget(self, key: Key, field: Field) -> Any:
        """The value of a field, or null."""
        return self._call(as_is, "HGET", key, field)

    def hmget(self, key: Key, *fields: Field) -> list[Any]:
        """The values of several fields."""
        values: list[Any] = self._call(as_is, "HMGET", key, *fields)
        return values

    def hdel(self, key: Key, *fields: Field) -> int:
        """Delete fields; answer how many existed."""
        return self._call(int, "HDEL", key, *fields)

    def hexists(self, key: Key, field: Field) -> int:
        """Whether a field exists: 1 or 0."""
        return self._call(int, "HEXISTS", key, field)

    def hlen(self, key: Key) -> int:
        """The number of fields."""
        return self._call(int, "HLEN", key)

    def hkeys(self, key: Key) -> list[Field]:
        """Every field name."""
        fields: list[Field] = self._call(as_is, "HKEYS", key)
        return fields

    def hvals(self, key: Key) -> list[Any]:
        """Every field's value."""
        values: list[Any] = self._call(as_is, "HVALS", key)
        return values

    def hgetall(self, key: Key) -> dict[Field, Any]:
        """Every field and its value, as a map."""
        fields: dict[Field, Any] = self._call(as_is, "HGETALL", key)
        return fields

    def hstrlen(self, key: Key, field: Field) -> int:
        """The length of a field's text or bytes value."""
        return self._call(int, "HSTRLEN", key, field)

    def hincrby(self, key: Key, field: Field, increment: int) -> int:
        """Add to a field's integer value."""
        return self._call(int, "HINCRBY", key, field, increment)

    def hincrbyfloat(self, key: Key, field: Field, increment: float) -> float:
        """Add to a field's numeric value; the result is a float."""
        return self._call(float, "HINCRBYFLOAT", key, field, increment)

    def hfind(self, key: Key, substring: str | bytes) -> list[Field]:
        """The fields whose name contains a substring."""
        fields: list[Field] = self._call(as_is, "HFIND", key, substring)
        return fields
