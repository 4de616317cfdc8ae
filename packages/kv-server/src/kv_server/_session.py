"""Per-connection state (what Redis calls a client) and the registry of connections.

A :class:`Session` is the ``ctx`` every command function receives: it reaches the
keyspace and the server state, and describes its connection for CLIENT LIST.

Closing rules: a session is asked to close by setting ``closing`` to a reason. Its
connection loop checks the flag after every batch, so replies already computed are
sent first. The caller may also interrupt it through its cancel scope: CLIENT KILL
interrupts any other connection, wherever it waits; shutdown interrupts only idle
connections, so that busy ones finish the batch they are answering.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio

# The closing reason of a connection that broke the protocol: it gets a PROTO error
# frame instead of a kill notice.
PROTOCOL_ERROR = "protocol error"

if TYPE_CHECKING:
    from ._dispatch import Entry
    from ._keyspace import Keyspace
    from ._state import ServerState


class Session:
    """One authenticated connection."""

    __slots__ = (
        "addr", "cancel_scope", "client_id", "closing", "commands", "created", "hostname",
        "id", "idle", "keyspace", "laddr", "last_active", "last_command", "log_as", "name",
        "readonly", "replies", "replying", "state", "transport", "wrote",
    )

    def __init__(self, state: ServerState, session_id: int, *, transport: str, addr: str,
                 laddr: str, readonly: bool = False) -> None:
        self.state = state
        self.keyspace: Keyspace = state.keyspace
        self.id = session_id
        self.transport = transport
        self.addr = addr
        self.laddr = laddr
        self.readonly = readonly
        """Authenticated with the read-only password: write and admin commands are refused."""
        self.name = ""
        self.client_id = ""
        self.hostname = ""
        self.created = self.last_active = time.monotonic()
        self.last_command: Entry | None = None
        self.commands = 0
        self.closing: str | None = None
        """Why the connection must close after its current batch, or None."""
        self.idle = False
        """True while the connection waits for input (safe to interrupt)."""
        self.replying = False
        """True while a batch's replies are partly sent."""
        self.cancel_scope = trio.CancelScope()
        self.log_as: list[object] | None = None
        """The command to log to the AOF instead of the one that ran (see _dispatch)."""
        self.wrote = False
        """Whether the current batch logged a write: its replies wait for the AOF."""
        self.replies: list[bytes] = []
        """The last batch's replies, one per command."""

    def close_soon(self, reason: str, *, interrupt: bool) -> None:
        """Ask the connection to close; ``interrupt`` also cancels whatever it awaits."""
        if self.closing is None:
            self.closing = reason
        if interrupt:
            self.cancel_scope.cancel()

    def describe(self, now: float) -> dict[str, object]:
        """This connection as CLIENT LIST shows it."""
        return {
            "id": self.id, "addr": self.addr, "laddr": self.laddr, "transport": self.transport,
            "name": self.name, "client-id": self.client_id, "hostname": self.hostname,
            "user": "readonly" if self.readonly else "default",
            "age": int(now - self.created), "idle": int(now - self.last_active),
            "cmd": self.last_command.spec.name.lower() if self.last_command else "",
            "commands": self.commands,
        }


class Sessions:
    """Connection ids and the sessions that completed their handshake."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._by_id: dict[int, Session] = {}
        self.handshaking = 0
        """Connections still in the handshake (not yet sessions)."""

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, session: Session) -> None:
        self._by_id[session.id] = session

    def remove(self, session: Session) -> None:
        self._by_id.pop(session.id, None)

    def get(self, session_id: int) -> Session | None:
        return self._by_id.get(session_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))
