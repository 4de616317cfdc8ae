"""Clients blocked on lists (BLPOP and friends): who waits for which key, and serving them.

Rules of this module:

1. A blocking command that finds nothing to take registers a :class:`Waiter` in the
   queue of each of its keys and ends its connection's batch; the connection then
   waits for the waiter's answer or timeout (``_connection.py``).
2. The blocking registry watches every key someone waits on (``Keyspace.watch``); a
   change marks the key ready. After each command (and after EXEC, never inside
   it) dispatch calls :meth:`Blocking.serve_ready`, which serves each ready key's
   waiters oldest first, one element each, while the key holds a non-empty list. A
   served element may make another key ready (BLMOVE's destination): that key is
   served in the same call.
3. Serving runs the non-blocking form of the command (LPOP, RPOP, LMOVE) for the
   waiter, in the serving connection's turn, and logs it to the AOF under that
   name: replay never blocks. The waiter's reply then waits for that AOF group
   like any write's.
4. A waiter leaves every queue when it is served, times out, or its connection is
   asked to close or goes away (``Session.close_soon``), so a client killed while
   blocked leaves no trace and is never served an element it would not read.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from kv_protocol.errors import ServerError
from kv_protocol.values import Key

from ._keyspace import Keyspace, KvList
from ._session import PEER_GONE

if TYPE_CHECKING:
    from ._aof import Group
    from ._dispatch import Dispatcher
    from ._session import Session

Serve = Callable[["Session", Key], tuple[list[Any], Callable[[Any], object]]]
"""For a key that holds a list: the non-blocking command to run for the waiter, and
how to turn its result into the blocking command's reply."""


def parse_timeout(timeout: float) -> float:
    """A blocking command's timeout in seconds (0: for ever, as ``math.inf``)."""
    try:
        finite = math.isfinite(timeout)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite or timeout < 0:
        raise ServerError("timeout must be a finite number of seconds, 0 or more")
    return timeout if timeout > 0 else math.inf


class Waiter:
    """One blocked command: its connection, its keys, and, once known, its answer."""

    __slots__ = ("frame", "group", "keys", "scope", "serve", "session", "timeout")

    def __init__(self, session: Session, keys: list[Key], serve: Serve, timeout: float) -> None:
        self.session = session
        self.keys = keys
        self.serve = serve
        self.timeout = timeout
        self.scope = trio.CancelScope()
        """The connection waits inside it; serving cancels it, which wakes the wait
        without a second task or an event (``_batches.py``)."""
        self.frame: bytes | None = None
        """The reply frame once served."""
        self.group: Group | None = None
        """The AOF group that holds the served pop; the reply waits for it."""


class Blocking:
    """Every waiter, in one FIFO queue per key."""

    def __init__(self, keyspace: Keyspace) -> None:
        self.keyspace = keyspace
        self.queues: dict[Key, deque[Waiter]] = {}
        self.ready: dict[Key, None] = {}
        """Keys changed since the last serve_ready that someone waits on (a dict: each
        once, in order, however often it changed)."""

    def block(self, session: Session, keys: list[Key], serve: Serve, timeout: float) -> None:
        waiter = Waiter(session, list(dict.fromkeys(keys)), serve, timeout)
        for key in waiter.keys:
            queue = self.queues.get(key)
            if queue is None:
                queue = self.queues[key] = deque()
                self.keyspace.watch(key, self)
            queue.append(waiter)
        session.blocked = waiter

    def touched(self, key: Key) -> None:
        self.ready[key] = None

    def release(self, waiter: Waiter) -> None:
        """Take ``waiter`` out of every queue (rule 4)."""
        for key in waiter.keys:
            queue = self.queues.get(key)
            if queue is None:
                continue
            try:
                queue.remove(waiter)
            except ValueError:
                continue
            if not queue:
                del self.queues[key]
                self.keyspace.unwatch(key, self)

    def serve_ready(self, dispatcher: Dispatcher) -> None:
        """Serve the waiters of every ready key, oldest first (rules 2 and 3)."""
        ready, keyspace = self.ready, self.keyspace
        while ready:
            key = next(iter(ready))
            del ready[key]
            queue = self.queues.get(key)
            while queue and type(keyspace.peek(key)) is KvList:
                waiter = queue[0]
                if waiter.session.peer_closed():  # gone before its task could notice
                    waiter.session.close_soon(PEER_GONE, interrupt=True)  # releases it
                    queue = self.queues.get(key)
                    continue
                self.release(waiter)
                argv, wrap = waiter.serve(waiter.session, key)
                waiter.frame, logged = dispatcher.serve_waiter(waiter.session, argv, wrap)
                if logged and dispatcher.aof is not None:
                    waiter.group = dispatcher.aof.group
                waiter.session.idle = False  # it has a reply to send: no longer interruptible
                waiter.scope.cancel()
                queue = self.queues.get(key)
