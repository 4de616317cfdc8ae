"""The blocking client: a socket shell around the sans-IO core, with a pool.

Error handling: a broken connection raises :class:`ConnectionError` and a missed
reply raises :class:`TimeoutError`; either closes that connection, and the next
command takes another. A command whose connection broke is sent again once, on a
new connection, only if that is safe (``_core.may_retry``): its fate is unknown.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

from kv_protocol.connection import Session
from kv_protocol.errors import KvError

from ._commands import Commands
from ._commands_base import as_is
from ._config import ClientBase, ClientConfig, ClientOptions
from ._core import PING, RECEIVE_BYTES, ClientCore, decrypt_replies, encode_request, may_retry
from ._errors import ConnectionError, TimeoutError
from ._pipeline import PipelineBase, results
from ._pool import IdleConnections

T = TypeVar("T")


class SyncConnection:
    """One authenticated socket (TCP, TLS or Unix)."""

    def __init__(self, config: ClientConfig) -> None:
        self.core = ClientCore(config)
        try:
            self.sock = self._open(config)
        except builtins.TimeoutError:  # socket.timeout; also a TLS handshake's
            raise TimeoutError(f"cannot connect to {config.address} within "
                               f"{config.connect_timeout_s} s") from None
        except ssl.SSLError as exc:
            raise ConnectionError(f"TLS with {config.address} failed: {exc}") from exc
        except OSError as exc:
            raise ConnectionError(f"cannot connect to {config.address}: {exc}") from exc
        try:
            self._handshake()
            self.sock.settimeout(config.timeout_s)
        except BaseException:
            self.sock.close()
            raise

    @staticmethod
    def _open(config: ClientConfig) -> socket.socket:
        if config.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(config.connect_timeout_s)
            try:
                sock.connect(str(config.unix_path))
            except BaseException:
                sock.close()
                raise
            return sock
        sock = socket.create_connection((config.host, config.port), timeout=config.connect_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if config.ssl is None:
            return sock
        try:
            return config.ssl.wrap_socket(sock, server_hostname=config.server_hostname or config.host)
        except BaseException:
            sock.close()
            raise

    def _handshake(self) -> None:
        core = self.core
        try:
            self.sock.sendall(core.data_to_send())
            while not core.receive_handshake(self.sock.recv(RECEIVE_BYTES)):
                if out := core.data_to_send():
                    self.sock.sendall(out)
        except ConnectionError:
            raise
        except builtins.TimeoutError:  # what sockets raise
            raise TimeoutError(f"no handshake reply from {core.config.address}") from None
        except OSError as exc:
            raise ConnectionError(f"handshake with {core.config.address} failed: {exc}") from exc

    def request(self, payload: bytes, count: int, timeout_s: float | None) -> list[object]:
        """Send ``payload`` (``count`` commands) and return their replies.

        ``timeout_s`` bounds the whole request, however many reads its replies take.
        """
        core, sock = self.core, self.sock
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        if timeout_s != core.config.timeout_s:
            sock.settimeout(timeout_s)
        try:
            sock.sendall(payload)
            replies: list[object] = []
            while len(replies) < count:
                if deadline is not None and replies:
                    sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                replies += core.receive_replies(sock.recv(RECEIVE_BYTES))
            if deadline is not None:
                sock.settimeout(core.config.timeout_s)
        except ConnectionError:
            raise
        except builtins.TimeoutError:
            raise TimeoutError(f"no reply from {core.config.address} within "
                               f"{timeout_s} s") from None
        except OSError as exc:
            raise ConnectionError(f"connection to {core.config.address} broke: {exc}") from exc
        return replies

    def fileno(self) -> int:
        return self.sock.fileno()

    def abort(self) -> None:
        self.sock.close()


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
        if self._pid != os.getpid():
            self._start()
        if not self._slots.acquire(timeout=self.config.pool_timeout_s):
            raise ConnectionError(f"all {self.config.max_connections} connections to "
                                  f"{self.config.address} stayed busy for "
                                  f"{self.config.pool_timeout_s} s")
        try:
            connection, generation = self._take()
            try:
                yield connection
            except BaseException:
                connection.abort()
                raise
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


class Pipeline(PipelineBase):
    """Commands queued on a :class:`Client`, sent together by :meth:`execute`.

    Example::

        with kv.pipeline() as p:
            p.set("a", 1).incr("a").get("a")
            assert p.execute() == [True, 2, 2]
    """

    def __init__(self, client: Client) -> None:
        super().__init__()
        self._client = client

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued commands in one write; their results, in order."""
        calls = self._take()
        if not calls:
            return []
        replies = self._client._request([call.args for call in calls])
        return results(calls, replies, raise_on_error)


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
        """Send one command by name and return its reply untouched; an error reply raises."""
        return self._call(as_is, *args)

    execute = execute_command

    def pipeline(self) -> Pipeline:
        """A pipeline: queue commands, then send them in one write with ``execute()``."""
        return Pipeline(self)

    def _request(self, commands: Sequence[Sequence[object]]) -> list[object]:
        config = self.config
        payload, count = encode_request(config, commands), len(commands)
        sent = False
        try:
            with self._pool.connection() as connection:
                sent = True
                replies = connection.request(payload, count, config.timeout_s)
        except ConnectionError:
            if not sent or not may_retry(config, commands):
                raise
            with self._pool.connection() as connection:
                replies = connection.request(payload, count, config.timeout_s)
        return decrypt_replies(config, commands, replies)

    def close(self) -> None:
        """Close the pool's connections; the next command opens a new one."""
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
