"""Helpers for kv-client's tests: a toy cipher, a core past its handshake, a scripted
server, and the ``kv`` command in a subprocess.

A real kv-server decides itself when a push goes out, so it cannot be made to put a
message exactly between a command and its reply every time. :class:`ScriptedServer`
can: it completes the handshake as kv_protocol's ServerConnection does, then answers
each command with the bytes a test's script returns (replies, pushes, in any order),
so the clients' shells are tested over a real loopback socket against exact
interleavings.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kv_client._config import ClientConfig
from kv_client._core import ClientCore
from kv_client._encryption import Cipher
from kv_protocol.connection import ServerConnection
from protocol_helpers import PASSWORD, TEST_CREDENTIALS

KV_RUN_TIMEOUT_S = 30.0
"""How long a run of the ``kv`` command may take: generous for a loaded CI machine."""
DEADLINE_S = 10.0
"""No test here needs more than a fraction of a second; a hang fails instead (the
async bodies run under this deadline too, conftest.py)."""


class XorCipher:
    """A toy cipher (fast, not secure): any object with these three members plugs in."""

    name = "xor"

    def encrypt(self, plaintext: bytes) -> bytes:
        return bytes(byte ^ 0x5A for byte in plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self.encrypt(ciphertext)


XOR: Cipher = XorCipher()
"""For the unit and integration tests of encryption that need no GnuPG or age."""


def ready_core(config: ClientConfig | None = None) -> ClientCore:
    """A client core that has completed its handshake with an in-memory server."""
    core = ClientCore(config or ClientConfig(PASSWORD, name="unit"))
    server = ServerConnection(TEST_CREDENTIALS, connection_id=3, server_name="kv-server test")
    server.receive_data(core.data_to_send())
    assert core.receive_handshake(server.data_to_send()) is False
    server.receive_data(core.data_to_send())
    assert core.receive_handshake(server.data_to_send()) is True
    assert core.session is not None and core.session.connection_id == 3
    return core


@dataclass(frozen=True)
class HangUp:
    """A script's answer that sends ``data`` and then closes the connection (what the
    server does after a kill notice)."""

    data: bytes


Script = Callable[[list[object]], "bytes | HangUp"]
"""Given a command array, the bytes to answer it with (frames, in any order)."""


class ScriptedServer:
    """A kv server on 127.0.0.1:0 that answers from a script, a thread per connection.

    ``commands`` records ``(connection number, command)`` pairs, so a test can tell
    which commands shared a connection.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.commands: list[tuple[int, list[object]]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def config(self, **options: Any) -> dict[str, Any]:
        """Client arguments for this server."""
        return {"host": "127.0.0.1", "port": self.port, "password": PASSWORD, **options}

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(sock, self.connections), daemon=True).start()

    def _answer(self, sock: socket.socket, number: int) -> None:
        with sock:
            self._converse(sock, number)

    def _converse(self, sock: socket.socket, number: int) -> None:
        server = ServerConnection(TEST_CREDENTIALS, connection_id=number, server_name="scripted")
        while data := _receive(sock):
            out, hang_up = b"", False
            for command in server.receive_data(data):
                assert isinstance(command, list)
                self.commands.append((number, command))
                answer = self.script(command)
                if isinstance(answer, HangUp):
                    out, hang_up = out + answer.data, True
                    break
                out += answer
            try:
                sock.sendall(server.data_to_send() + out)
            except OSError:
                return
            if hang_up:
                return

    def sent(self) -> list[list[object]]:
        """The commands received, whatever their connection."""
        return [command for _, command in self.commands]

    def close(self) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept(), which close() does not
        self._listener.close()
        self._thread.join(DEADLINE_S)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:  # reset by a client that closed in the middle
        return b""


def kv_argv(port: int, password: str, *args: str) -> list[str]:
    """The ``kv`` command (``python -m kv_client``) for a server on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "kv_client", "--port", str(port), "--pass", password, *args]


def run_kv(port: int, password: str, *args: str,
           stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``kv`` to its end; its output as text."""
    done = subprocess.run(kv_argv(port, password, *args), input=stdin, capture_output=True,
                          timeout=KV_RUN_TIMEOUT_S, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                       done.stderr.decode())
