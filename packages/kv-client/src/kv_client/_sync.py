"""The blocking client: a socket shell around the sans-IO core.

Error handling: a broken connection raises :class:`ConnectionError` and a missed
reply raises :class:`TimeoutError`; either closes the connection, and the next
command opens a new one. A command is never sent twice: after a failure its fate
is unknown, and only the caller knows whether repeating it is safe.
"""

from __future__ import annotations

import builtins
import socket
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kv_protocol.connection import Session
from kv_protocol.errors import ServerError

from ._commands import Commands
from ._core import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_HOST,
    DEFAULT_PORT,
    RECEIVE_BYTES,
    ClientConfig,
    ClientCore,
)
from ._errors import ConnectionError, TimeoutError


class SyncConnection:
    """One authenticated socket."""

    def __init__(self, config: ClientConfig) -> None:
        self.core = ClientCore(config)
        try:
            self.sock = self._open(config)
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
        return sock

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

    def request(self, payload: bytes, count: int) -> list[object]:
        """Send ``payload`` (``count`` commands) and return their ``count`` replies."""
        core, sock = self.core, self.sock
        try:
            sock.sendall(payload)
            replies: list[object] = []
            while len(replies) < count:
                replies += core.receive_replies(sock.recv(RECEIVE_BYTES))
        except ConnectionError:
            raise
        except builtins.TimeoutError:
            raise TimeoutError(f"no reply from {core.config.address} within "
                               f"{core.config.timeout_s} s") from None
        except OSError as exc:
            raise ConnectionError(f"connection to {core.config.address} broke: {exc}") from exc
        return replies

    def close(self) -> None:
        self.sock.close()


class Client(Commands):
    """A blocking kv client.

    Example::

        with Client(password="secret") as kv:
            kv.set("answer", 42)
            assert kv.get("answer") == 42

    Args:
        host, port: the server's TCP address.
        password: the server's password; defaults to the ``KV_PASS`` variable.
        name: a name for this connection, shown by CLIENT LIST.
        unix_path: connect to this Unix socket instead of TCP.
        timeout: seconds to wait for a reply (None waits forever).
        connect_timeout: seconds to connect and complete the handshake.

    The connection opens on first use and reopens after a failure.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        password: str | None = None,
        name: str = "",
        unix_path: str | Path | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        self.config = ClientConfig.create(
            password, host=host, port=port, name=name,
            unix_path=Path(unix_path) if unix_path is not None else None,
            timeout_s=timeout, connect_timeout_s=connect_timeout,
        )
        self._connection: SyncConnection | None = None

    def __repr__(self) -> str:
        return f"<Client {self.config.address}>"

    @property
    def session(self) -> Session | None:
        """The connection id and server name, once connected."""
        return self._connection.core.session if self._connection else None

    def connect(self) -> SyncConnection:
        """Open the connection now rather than on first use (it is returned)."""
        if self._connection is None:
            self._connection = SyncConnection(self.config)
        return self._connection

    def execute_command(self, *args: object) -> Any:
        """Send one command and return its reply; an error reply raises."""
        [reply] = self._request([args])
        if isinstance(reply, ServerError):
            raise reply
        return reply

    execute = execute_command

    def _request(self, commands: Sequence[Sequence[object]]) -> list[object]:
        connection = self.connect()
        payload = b"".join(connection.core.encode_command(args) for args in commands)
        try:
            return connection.request(payload, len(commands))
        except BaseException:
            # Whatever interrupted the request (an error, Ctrl-C), its replies may still
            # arrive and would be taken for the next command's: start afresh.
            self.close()
            raise

    def close(self) -> None:
        """Close the connection; the next command opens a new one."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
