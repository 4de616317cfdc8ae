"""One method per command of the table, one line each (redis-py's mixin layout).

Each method's docstring is its command's summary in ``kv_protocol.commands``;
tests/test_methods_match_table.py checks that every command has a method, that
every method names a command, and that the docstrings match, so the table and the
client cannot drift apart. Methods are grouped by the table's families, one mixin
module each (``_commands_strings.py``, ``_commands_keys.py``, ``_commands_lists.py``,
``_commands_hashes.py``, ``_commands_pubsub.py``); :class:`Commands` mixes them
together and adds the connection and server commands.

The commands in :data:`CONNECTION_STATE` have no method: each changes what its
connection does with later commands, and a pooled client may send the next
command on another connection. They are reached through objects that hold one
connection (transactions, pub/sub), as the mapping says.

Replies: commands that answer a status such as ``OK`` return ``True``, as
redis-py's do (SET without GET returns False when NX or XX stopped it), integer
replies are ints, and keyword options are keyword-only arguments that send the
table's words (``set(k, v, ex=10, nx=True)`` sends ``SET k v EX 10 NX``).
``execute()`` returns replies untouched.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from kv_protocol.errors import LocalProtocolError
from kv_protocol.values import Value

from ._commands_base import as_is, status
from ._commands_hashes import HashCommands
from ._commands_keys import KeyCommands
from ._commands_lists import ListCommands
from ._commands_pubsub import PubSubCommands
from ._commands_strings import StringCommands

# Method names that cannot be the command's name in lower case.
METHOD_NAMES: Final = {"DEL": "delete"}


CONNECTION_STATE: Final = {
    "MULTI": "client.pipeline(transaction=True) or client.transaction()",
    "EXEC": "Pipeline.execute() of a transaction",
    "DISCARD": "a transaction pipeline (leaving it discards what is queued)",
    "WATCH": "Pipeline.watch() or client.transaction(func, *keys)",
    "UNWATCH": "Pipeline.unwatch()",
    "SUBSCRIBE": "client.pubsub().subscribe()",
    "UNSUBSCRIBE": "PubSub.unsubscribe()",
    "PSUBSCRIBE": "client.pubsub().psubscribe()",
    "PUNSUBSCRIBE": "PubSub.punsubscribe()",
}
"""Commands that change their connection's state, each with what offers it instead."""


def refuse_connection_state(args: tuple[object, ...]) -> None:
    """Refuse, before sending, a command that would leave a pooled connection in a state
    the next user of that connection does not expect (queueing, watching, subscribed).

    Raises:
        LocalProtocolError: ``args`` names one of :data:`CONNECTION_STATE`.
    """
    name = args[0].upper() if args and type(args[0]) is str else None
    if name in CONNECTION_STATE:
        raise LocalProtocolError(
            f"{name} changes the state of its connection, and a pooled client may send the "
            f"next command on another one: use {CONNECTION_STATE[name]}")


def method_name(command: str) -> str:
    """The client method for a table command (``CLIENT KILL`` -> ``client_kill``)."""
    return METHOD_NAMES.get(command, command.lower().replace(" ", "_"))


class _NoMessage:
    def __repr__(self) -> str:
        return "<no message>"


_NO_MESSAGE: Final = _NoMessage()


class Commands(StringCommands, KeyCommands, ListCommands, HashCommands, PubSubCommands):
    """The command methods, for any class that can run a command.

    A subclass provides ``_call``.
    """

    # connection
    def ping(self, message: Value | _NoMessage = _NO_MESSAGE) -> Any:
        """Check that the server answers."""
        return self._call(as_is, "PING", *(() if message is _NO_MESSAGE else (message,)))

    def echo(self, message: Value) -> Any:
        """Send back the given value."""
        return self._call(as_is, "ECHO", message)

    def client_id(self) -> int:
        """The id of this connection."""
        return self._call(int, "CLIENT", "ID")

    def client_getname(self) -> str | None:
        """The name of this connection, or null."""
        name: str | None = self._call(as_is, "CLIENT", "GETNAME")
        return name

    def client_setname(self, name: str) -> bool:
        """Name this connection."""
        return self._call(status, "CLIENT", "SETNAME", name)

    def client_list(self) -> list[dict[str, Any]]:
        """Describe every connection."""
        clients: list[dict[str, Any]] = self._call(as_is, "CLIENT", "LIST")
        return clients

    def client_kill(self, *ids: int) -> int:
        """Close the connections with the given ids."""
        return self._call(int, "CLIENT", "KILL", "ID", *ids)

    # server
    def flushall(self) -> bool:
        """Delete every key."""
        return self._call(status, "FLUSHALL")

    def info(self, *sections: str) -> dict[str, dict[str, Any]]:
        """Information and statistics about the server."""
        info: dict[str, dict[str, Any]] = self._call(as_is, "INFO", *sections)
        return info

    # persistence
    def save(self) -> bool:
        """Write a snapshot now, blocking every client until done."""
        return self._call(status, "SAVE")

    def bgsave(self) -> str:
        """Write a snapshot in the background."""
        return self._call(str, "BGSAVE")

    def lastsave(self) -> int:
        """Unix time in seconds of the last successful snapshot."""
        return self._call(int, "LASTSAVE")

    def convert(self, format: Literal["plaintext", "binary"] | None = None) -> str:
        """Switch the snapshot's format between plaintext and binary."""
        return self._call(str, "CONVERT", *([format.upper()] if format else []))
