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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import trio

# The closing reason of a connection that broke the protocol: it gets a PROTO error
# frame instead of a kill notice.
PROTOCOL_ERROR = "protocol error"
# The closing reason of a connection whose peer hung up while it was blocked.
PEER_GONE = "closed by peer"

if TYPE_CHECKING:
    from ._blocking import Waiter
    from ._entry import Entry
    from ._keyspace import Keyspace
    from ._pubsub import Subscriber
    from ._state import ServerState
    from ._transactions import Watch


class Session:
    """One authenticated connection."""

    __slots__ = (
        "addr", "blocked", "cancel_scope", "client_id", "closing", "commands", "created",
        "executing", "hostname", "id", "idle", "keyspace", "laddr", "last_active",
        "last_command", "log_as", "logged", "multi", "multi_failed", "name", "peer_closed",
        "pending",
        "pubsub", "readonly", "replies", "replying", "restricted", "state", "transport",
        "watch",
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
        self.logged: list[object] = []
        """The commands of the current batch that logged a write (their replies wait for
        the AOF); an EXEC that logged its transaction counts as one."""
        self.replies: list[bytes] = []
        """The last batch's replies, one per command."""
        self.multi: list[tuple[Entry, list[object]]] | None = None
        """The commands queued since MULTI, or None outside a transaction."""
        self.multi_failed = False
        """A command was refused while queueing: EXEC answers EXECABORT."""
        self.executing = False
        """EXEC is running the queue: blocking commands answer at once."""
        self.watch: Watch | None = None
        """The keys WATCHed for the next EXEC, or None."""
        self.blocked: Waiter | None = None
        """The blocking command this connection waits on, or None."""
        self.pending: list[object] = []
        """Commands pipelined after a blocking one: they run once it is answered."""
        self.pubsub: Subscriber | None = None
        """Subscriptions and the queue of pushes, from the first SUBSCRIBE on."""
        self.peer_closed: Callable[[], bool] = _never
        """Whether the peer certainly hung up (a non-blocking peek): a blocked client is
        checked before it is served, so no element goes to a closed socket."""
        self.restricted = readonly
        """Whether dispatch must look closer at every command: read-only, in MULTI or
        subscribed (``update``); false for most sessions, which then pay one test."""

    def update(self) -> None:
        """Recompute ``restricted`` after MULTI, EXEC, DISCARD or a (un)subscription."""
        self.restricted = (self.readonly or self.multi is not None
                           or (self.pubsub is not None and self.pubsub.count > 0))

    def close_soon(self, reason: str, *, interrupt: bool) -> None:
        """Ask the connection to close; ``interrupt`` also cancels whatever it awaits."""
        if self.closing is None:
            self.closing = reason
        if self.blocked is not None and self.blocked.frame is None:
            self.state.blocking.release(self.blocked)  # so no one serves it meanwhile
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
            "sub": len(self.pubsub.channels) if self.pubsub else 0,
            "psub": len(self.pubsub.patterns) if self.pubsub else 0,
            "multi": -1 if self.multi is None else len(self.multi),
            "watch": len(self.watch.keys) if self.watch else 0,
            "blocked": self.blocked is not None,
            "omem": self.pubsub.outbox.size if self.pubsub else 0,
        }


def _never() -> bool:
    return False


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
