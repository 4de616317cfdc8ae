"""One method per command of the table, one line each (redis-py's mixin layout).

Each method's docstring is its command's summary in ``kv_protocol.commands``;
tests/test_methods_match_table.py checks that every command has a method, that
every method names a command, and that the docstrings match, so the table and the
client cannot drift apart. Methods of commands that answer a status such as
``OK`` return ``True``, as redis-py's do; ``execute()`` returns replies untouched.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Final

from kv_protocol.values import Key, Value

# Method names that cannot be the command's name in lower case.
METHOD_NAMES: Final = {"DEL": "delete"}


def method_name(command: str) -> str:
    """The client method for a table command (``CLIENT KILL`` -> ``client_kill``)."""
    return METHOD_NAMES.get(command, command.lower().replace(" ", "_"))


class _NoMessage:
    def __repr__(self) -> str:
        return "<no message>"


_NO_MESSAGE: Final = _NoMessage()


class Commands(abc.ABC):
    """The command methods, for any class that can run a command."""

    @abc.abstractmethod
    def execute_command(self, *args: object) -> Any:
        """Send one command and return its reply, raising error replies."""

    def _status(self, *args: object) -> bool:
        self.execute_command(*args)
        return True

    # connection
    def ping(self, message: Value | _NoMessage = _NO_MESSAGE) -> Any:
        """Check that the server answers."""
        return self.execute_command("PING", *(() if message is _NO_MESSAGE else (message,)))

    def echo(self, message: Value) -> Any:
        """Send back the given value."""
        return self.execute_command("ECHO", message)

    def client_id(self) -> int:
        """The id of this connection."""
        return int(self.execute_command("CLIENT", "ID"))

    def client_getname(self) -> str | None:
        """The name of this connection, or null."""
        name: str | None = self.execute_command("CLIENT", "GETNAME")
        return name

    def client_setname(self, name: str) -> bool:
        """Name this connection."""
        return self._status("CLIENT", "SETNAME", name)

    def client_list(self) -> list[dict[str, Any]]:
        """Describe every connection."""
        clients: list[dict[str, Any]] = self.execute_command("CLIENT", "LIST")
        return clients

    def client_kill(self, *ids: int) -> int:
        """Close the connections with the given ids."""
        return int(self.execute_command("CLIENT", "KILL", "ID", *ids))

    # strings
    def set(self, key: Key, value: Value) -> bool:
        """Set a key to a value."""
        return self._status("SET", key, value)

    def get(self, key: Key) -> Any:
        """The value of a key, or null."""
        return self.execute_command("GET", key)

    def getset(self, key: Key, value: Value) -> Any:
        """Set a key and return its old value."""
        return self.execute_command("GETSET", key, value)

    def mset(self, mapping: Mapping[Key, Value]) -> bool:
        """Set several keys at once."""
        return self._status("MSET", *(item for pair in mapping.items() for item in pair))

    def mget(self, *keys: Key) -> list[Any]:
        """The values of several keys."""
        values: list[Any] = self.execute_command("MGET", *keys)
        return values

    def append(self, key: Key, value: str | bytes) -> int:
        """Append text or bytes to a value; answer its new length."""
        return int(self.execute_command("APPEND", key, value))

    def strlen(self, key: Key) -> int:
        """The length of a text or bytes value."""
        return int(self.execute_command("STRLEN", key))

    # keyspace
    def delete(self, *keys: Key) -> int:
        """Delete keys; answer how many existed."""
        return int(self.execute_command("DEL", *keys))

    def exists(self, *keys: Key) -> int:
        """Count how many of the keys exist."""
        return int(self.execute_command("EXISTS", *keys))

    def type(self, key: Key) -> str:
        """The type of a key: string, list, hash, or none."""
        return str(self.execute_command("TYPE", key))

    def keys(self, pattern: str | bytes = "*") -> list[Key]:
        """Every key matching a glob pattern."""
        found: list[Key] = self.execute_command("KEYS", pattern)
        return found

    def dbsize(self) -> int:
        """The number of keys."""
        return int(self.execute_command("DBSIZE"))

    # server
    def flushall(self) -> bool:
        """Delete every key."""
        return self._status("FLUSHALL")

    def info(self, *sections: str) -> dict[str, dict[str, Any]]:
        """Information and statistics about the server."""
        info: dict[str, dict[str, Any]] = self.execute_command("INFO", *sections)
        return info
