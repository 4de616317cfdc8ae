"""The connection pool's bookkeeping, shared by the blocking and async pools.

The shells bound the number of connections with a semaphore (``threading``'s,
trio's or asyncio's) and keep the idle ones here. Rules:

- the most recently used idle connection is taken first, so a quiet client
  keeps one warm connection and lets the others age;
- an idle connection whose socket is readable is dropped: the server closed it
  (a restart, CLIENT KILL, idle timeout) or pushed a notice before closing, and
  nothing else may arrive on an idle connection;
- one idle for longer than the health-check interval is PINGed before reuse.

After a ``fork`` the blocking pool starts afresh in the child (``_sync.py``):
two processes writing to one socket would interleave their frames.
"""

from __future__ import annotations

import select
import time
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class PooledConnection(Protocol):
    def fileno(self) -> int:
        """The socket's descriptor, to see whether it became readable while idle."""

    def abort(self) -> None:
        """Close at once, without goodbye: the peer is gone or the process forked."""


C = TypeVar("C", bound=PooledConnection)


@dataclass(slots=True)
class _Idle(Generic[C]):
    connection: C
    since: float


class IdleConnections(Generic[C]):
    """The idle connections of one pool; not thread-safe (the shells lock around it)."""

    def __init__(self, health_check_s: float) -> None:
        self.health_check_s = health_check_s
        self._idle: list[_Idle[C]] = []

    def take(self) -> tuple[C, bool] | None:
        """An idle connection and whether it needs a PING first, or None.

        Connections found closed on the way are aborted.
        """
        now = time.monotonic()
        while self._idle:
            idle = self._idle.pop()
            if _readable(idle.connection):
                idle.connection.abort()
                continue
            return idle.connection, now - idle.since > self.health_check_s
        return None

    def give_back(self, connection: C) -> None:
        self._idle.append(_Idle(connection, time.monotonic()))

    def drain(self) -> list[C]:
        """Every idle connection, removed, for the closing pool to close."""
        connections = [idle.connection for idle in self._idle]
        self._idle.clear()
        return connections


def _readable(connection: PooledConnection) -> bool:
    # poll, not select: select cannot watch a descriptor numbered 1024 or more.
    fileno = connection.fileno()
    if fileno < 0:  # closed underneath us
        return True
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))
