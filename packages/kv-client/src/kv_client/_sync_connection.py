"""One blocking connection: a socket (TCP, TLS or Unix) driven by the sans-IO core.

The pool (``_sync.py``) lends it for requests; a watching pipeline and a
subscriber hold one for longer. Errors are mapped here, once: a broken or refused
socket raises :class:`ConnectionError`, a missed reply :class:`TimeoutError`.
"""

from __future__ import annotations

import builtins
import math
import select
import socket
import ssl
import time

from kv_protocol.errors import RemoteProtocolError

from ._config import ClientConfig
from ._core import RECEIVE_BYTES, ClientCore
from ._errors import ConnectionError, TimeoutError


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
            if sock.gettimeout() != core.config.timeout_s:
                sock.settimeout(core.config.timeout_s)
        except ConnectionError:
            raise
        except builtins.TimeoutError:
            raise TimeoutError(f"no reply from {core.config.address} within "
                               f"{timeout_s} s") from None
        except OSError as exc:
            raise ConnectionError(f"connection to {core.config.address} broke: {exc}") from exc
        return replies

    def receive_pushes(self, timeout_s: float | None) -> None:
        """Wait up to ``timeout_s`` seconds (None: for ever) for pushes; what arrives
        is queued in ``core.pushes``.

        Raises:
            ConnectionError: the connection broke or the server closed it.
            RemoteProtocolError: a reply arrived, and no request is waiting for one.
        """
        core, sock = self.core, self.sock
        # A TLS socket may hold a decrypted record that poll cannot see.
        if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            if not poller.poll(None if timeout_s is None else max(0, math.ceil(timeout_s * 1000))):
                return
        try:
            replies = core.receive_replies(sock.recv(RECEIVE_BYTES))
        except ConnectionError:
            raise
        except builtins.TimeoutError:
            raise TimeoutError(f"{core.config.address} sent part of a message and stopped") from None
        except OSError as exc:
            raise ConnectionError(f"connection to {core.config.address} broke: {exc}") from exc
        if replies:
            raise RemoteProtocolError(f"{core.config.address} sent a reply that no request "
                                      f"asked for: {replies[0]!r}")

    def fileno(self) -> int:
        return self.sock.fileno()

    def abort(self) -> None:
        self.sock.close()
