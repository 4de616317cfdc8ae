"""Real kv-server processes for integration tests (the fixtures live in conftest.py).

``start_server`` runs ``python -m kv_server`` on port 0 of 127.0.0.1 with a temporary
data directory, waits for its ready line (which names the port it got), and the
fixture stops it with SIGTERM afterwards, checking that it exits cleanly. Nothing is
mocked: tests talk to it through kv_client or raw sockets.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kv_client import Client
from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS

PASSWORD = "integration-password"
READY = re.compile(r"ready on (?P<addresses>.*) \(")
START_TIMEOUT_S = 30.0


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    password: str | None
    addresses: list[str]
    host: str = "127.0.0.1"
    port: int = 0
    unix_path: Path | None = None
    output: list[str] = field(default_factory=list)

    def client(self, **options: Any) -> Client:
        if self.unix_path is not None and "port" not in options:
            options.setdefault("unix_path", self.unix_path)
        options.setdefault("password", self.password)
        return Client(self.host, self.port, **options)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"kv-server did not stop within {timeout_s} s after {sig}") from None
        if self.proc.stdout is not None:
            self.output.append(self.proc.stdout.read().decode())
            self.proc.stdout.close()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text()


def start_server(data_dir: Path, *args: str, password: str | None = PASSWORD,
                 env: dict[str, str] | None = None) -> ServerProcess:
    """Start kv-server and wait until it accepts connections."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    command = [sys.executable, "-m", "kv_server", "--port", "0", "--dir", str(data_dir), *args]
    if password is not None:
        command += ["--pass", password]
    if "--auth-iterations" not in args:
        command += ["--auth-iterations", str(MIN_PBKDF2_ITERATIONS)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log,
                                env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([proc.stdout], [], [], max(remaining, 0))
        chunk = os.read(proc.stdout.fileno(), 4096) if readable else b""
        if not chunk:
            proc.kill()
            proc.wait()
            raise AssertionError(f"kv-server did not start: {log_path.read_text()}")
        line += chunk
    match = READY.search(line.decode())
    assert match, line
    addresses = match["addresses"].split(", ")
    server = ServerProcess(proc, data_dir, log_path, password, addresses, output=[line.decode()])
    for address in addresses:
        kind, where = address.split(" ", 1)
        if kind == "tcp" and not server.port:
            server.host, port = where.rsplit(":", 1)
            server.host = server.host.strip("[]")
            server.port = int(port)
        elif kind == "unix":
            server.unix_path = Path(where)
    return server


class RawConnection:
    """A blocking socket speaking kv's protocol by hand, for malformed and hostile input."""

    def __init__(self, server: ServerProcess, password: str | None = PASSWORD) -> None:
        import socket

        from kv_protocol.connection import ClientConnection
        from kv_protocol.framing import FrameDecoder

        self.sock = socket.create_connection((server.host, server.port), timeout=15)
        self.conn = ClientConnection(password or "", name="raw")
        self.decoder = FrameDecoder()

    def handshake(self) -> None:
        from kv_protocol.connection import State

        self.sock.sendall(self.conn.data_to_send())
        while self.conn.state is State.HANDSHAKE:
            self.conn.receive_data(self.sock.recv(65536))
            if out := self.conn.data_to_send():
                self.sock.sendall(out)

    def messages(self) -> list[tuple[int, object]]:
        """Every frame until the server closes the connection."""
        from kv_protocol.messages import decode_message

        found = []
        while data := self.sock.recv(65536):
            found += [decode_message(item) for item in self.decoder.feed(data)]
        return found

    def close(self) -> None:
        self.sock.close()
