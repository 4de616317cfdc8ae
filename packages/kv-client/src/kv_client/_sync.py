"""The blocking client: a socket shell around the sans-IO core, with a pool.

Error handling: a broken connection raises :class:`ConnectionError` and a missed
reply raises :class:`TimeoutError`; either closes that connection, and the next
command takes another. A command whose connection broke is sent again once, on a
new connection, only if that is safe (``_core.may_retry``): its fate is unknown.

The connection itself is in ``_sync_connection.py``, pipelines and transactions in
``_sync_pipeline.py`` and subscribers in ``_sync_pubsub.py``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from kv_protocol.connection import Session
from kv_protocol.errors import KvError
from kv_protocol.values import Key

from ._commands import Commands, refuse_connection_state
from ._commands_base import as_is
from ._config import ClientBase, ClientConfig, ClientOptions
from ._core import PING, decrypt_replies, encode_request, may_retry, request_timeout
from ._errors import ConnectionError, TimeoutError, WatchError
from ._pool import IdleConnections
from ._sync_connection import SyncConnection as SyncConnection  # kv-tools uses it here
from ._sync_pipeline import Pipeline
from ._sync_pubsub import PubSub

T = TypeVar("T")


class SyncPool:
    """Up to ``max_connections`` connections, shared by threads.

    A thread takes a connection for one request (a command or a pipeline) and
    gives it back after; a connection whose request failed in any way (broken,
    timed out, interrupted) is closed instead, since a late reply would be taken
    for the next request's.
    """

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.last_session: Session | None = None
        self._generation = 0
        self._start()

    def _start(self) -> None:
        """Empty: at creation, and in a forked child, where the parent's connections,
        and its lock and semaphore as another thread held them, are not to be used."""
        self._pid = os.getpid()
        self._slots = threading.BoundedSemaphore(self.config.max_connections)
        self._lock = threading.Lock()
        self._idle: IdleConnections[SyncConnection] = IdleConnections(self.config.health_check_s)

    @contextlib.contextmanager
    def connection(self) -> Iterator[SyncConnection]:
        """A connection for one request, given back after it (closed if it failed)."""
        connection, generation = self.acquire()
        try:
            yield connection
        except BaseException:
            self.release(connection, generation, reusable=False)
            raise
        self.release(connection, generation, reusable=True)

    def acquire(self) -> tuple[SyncConnection, int]:
        """A connection and the pool's generation, for :meth:`release`: a transaction
        that watches keys holds one for several requests."""
        if self._pid != os.getpid():
            self._start()
        if not self._slots.acquire(timeout=self.config.pool_timeout_s):
            raise ConnectionError(f"all {self.config.max_connections} connections to "
                                  f"{self.config.address} stayed busy for "
                                  f"{self.config.pool_timeout_s} s")
        try:
            return self._take()
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: SyncConnection, generation: int, *, reusable: bool) -> None:
        """Give a connection back, or close it when its state is unknown (a request
        failed or was interrupted: a late reply would be taken for the next one's)."""
        try:
            if reusable:
                self.last_session = connection.core.session
                with self._lock:
                    if generation == self._generation:
                        self._idle.give_back(connection)
                        return
            connection.abort()
        finally:
            self._slots.release()

    def _take(self) -> tuple[SyncConnection, int]:
        with self._lock:
            taken, generation = self._idle.take(), self._generation
        if taken is not None:
            connection, stale = taken
            if not stale:
                return connection, generation
            try:
                connection.request(PING, 1, self.config.health_check_timeout_s)
                return connection, generation
            except (ConnectionError, TimeoutError):
                connection.abort()
        return SyncConnection(self.config), generation

    def close(self) -> None:
        """Close the idle connections; those in use close when given back."""
        with self._lock:
            self._generation += 1
            idle = self._idle.drain()
        for connection in idle:
            connection.abort()


class Client(Commands, ClientBase):
    """A blocking kv client, safe to share between threads.

    Example::

        with Client(password="secret") as kv:
            kv.set("answer", 42)
            assert kv.get("answer") == 42

    Args:
        host, port: the server's TCP address (default 127.0.0.1:6378).
        options: see :class:`kv_client.ClientOptions` (``url``, ``password``,
            ``name``, ``unix_path``, ``ssl``, ``timeout``, ``max_connections``...).

    Connections open on first use, from a pool of at most ``max_connections``.
    """

    def __init__(self, host: str | None = None, port: int | None = None,
                 **options: Unpack[ClientOptions]) -> None:
        super().__init__(host, port, **options)
        self._pool = SyncPool(self.config)

    @property
    def session(self) -> Session | None:
        """The connection id and server name of the connection used last."""
        return self._pool.last_session

    def connect(self) -> None:
        """Open a connection now rather than on first use (it goes to the pool)."""
        with self._pool.connection():
            pass

    def _call(self, convert: Callable[[Any], T], *args: object) -> T:
        [reply] = self._request([args])
        if isinstance(reply, KvError):
            raise reply
        return convert(reply)

    def execute_command(self, *args: object) -> Any:
        """Send one command by name and return its reply untouched; an error reply raises.

        Raises:
            LocalProtocolError: MULTI, WATCH, SUBSCRIBE and the other commands that
                change their connection's state (see :meth:`pipeline`, :meth:`pubsub`).
        """
        refuse_connection_state(args)
        return self._call(as_is, *args)

    execute = execute_command

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """A pipeline: queue commands, then send them in one write with ``execute()``;
        with ``transaction=True``, between MULTI and EXEC, so they run as one unit."""
        return Pipeline(self, transaction)

    def transaction(self, func: Callable[[Pipeline], object], *watches: Key,
                    retries: int | None = None) -> list[Any]:
        """Run ``func(pipeline)`` and then its transaction, again while a watched key changes.

        ``func`` reads through the pipeline (its methods run at once while the
        ``watches`` keys are watched), calls ``pipeline.multi()`` and queues its
        writes; the transaction runs only if no watched key changed in the meantime,
        and otherwise everything starts again, ``func`` included.

        Example::

            def increment(pipe: Pipeline) -> None:
                value = pipe.get("counter") or 0
                pipe.multi()
                pipe.set("counter", value + 1)

            kv.transaction(increment, "counter")

        Args:
            retries: how many times to start again; None (the default, as redis-py)
                retries until the transaction runs.

        Returns:
            The transaction's results, as ``Pipeline.execute()`` returns them.

        Raises:
            WatchError: the watched keys kept changing for ``retries`` retries.
        """
        attempt = 0
        with self.pipeline(transaction=True) as pipe:
            while True:
                try:
                    if watches:
                        pipe.watch(*watches)
                    func(pipe)
                    return pipe.execute()
                except WatchError:
                    attempt += 1
                    if retries is not None and attempt > retries:
                        raise

    def pubsub(self) -> PubSub:
        """A subscriber on a connection of its own (opened at its first command, not
        taken from the pool, and closed by the subscriber, not by :meth:`close`):
        subscribe, then read messages."""
        return PubSub(self.config)

    def _request(self, commands: Sequence[Sequence[object]]) -> list[object]:
        config = self.config
        return decrypt_replies(config, commands,
                               self._exchange(commands, request_timeout(config, commands)))

    def _exchange(self, commands: Sequence[Sequence[object]], timeout_s: float | None) -> list[object]:
        """The replies to ``commands`` on a pooled connection, sent again after a broken
        connection when that is safe; not decrypted."""
        config = self.config
        payload, count = encode_request(config, commands), len(commands)
        sent = False
        try:
            with self._pool.connection() as connection:
                sent = True
                return connection.request(payload, count, timeout_s)
        except ConnectionError:
            if not sent or not may_retry(config, commands):
                raise
            with self._pool.connection() as connection:
                return connection.request(payload, count, timeout_s)

    def close(self) -> None:
        """Close the pool's connections; the next command opens a new one."""
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
