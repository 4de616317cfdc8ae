"""Real kv-server processes for integration tests (the fixtures live in conftest.py).

``start_server`` runs ``python -m kv_server`` on port 0 of 127.0.0.1 with a temporary
data directory (and, given :class:`TlsFiles`, a TLS listener on another port 0),
waits for its ready line (which names the ports it got), and the
fixture stops it with SIGTERM afterwards, checking that it exits cleanly. Nothing is
mocked: tests talk to it through kv_client or raw sockets.

``start_redis_server`` does the same for a real redis-server (the differential tests
compare kv with it): a free loopback port, a temporary directory, no persistence,
ready once it answers PING.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import ssl
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
STARTED: list[subprocess.Popen[bytes]] = []
"""Every kv-server started, so that a test that fails half-way leaves none running
(conftest.py kills what is left after each test)."""
REDIS_START_ATTEMPTS = 3
"""Tries with a fresh port: another process may take the free port we picked first."""


def stop_process(proc: subprocess.Popen[bytes], name: str, sig: int, timeout_s: float) -> int:
    """Send ``sig`` and wait; a server that does not stop in time is killed and fails the test."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"{name} did not stop within {timeout_s} s after {sig}") from None
    return proc.returncode


@dataclass(frozen=True)
class TlsFiles:
    """A server certificate and key, and optionally the CA that client certificates need."""

    cert: Path
    key: Path
    ca: Path | None = None

    def args(self) -> list[str]:
        """kv-server's flags for these files, with the TLS listener on a free port."""
        args = ["--tls-cert", str(self.cert), "--tls-key", str(self.key), "--tls-port", "0"]
        if self.ca is not None:
            args += ["--tls-ca", str(self.ca)]
        return args


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
    tls_port: int = 0
    """The TLS listener's port, 0 unless started with ``tls``."""

    def client(self, **options: Any) -> Client:
        if self.unix_path is not None and "port" not in options:
            options.setdefault("unix_path", self.unix_path)
        options.setdefault("password", self.password)
        return Client(self.host, self.port, **options)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        stop_process(self.proc, "kv-server", sig, timeout_s)
        if self.proc.stdout is not None:
            self.output.append(self.proc.stdout.read().decode())
            self.proc.stdout.close()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text()


def start_server(data_dir: Path, *args: str, password: str | None = PASSWORD,
                 env: dict[str, str] | None = None, tls: TlsFiles | None = None) -> ServerProcess:
    """Start kv-server and wait until it accepts connections."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    command = [sys.executable, "-m", "kv_server", "--port", "0", "--dir", str(data_dir), *args]
    if tls is not None:
        command += tls.args()
    if password is not None:
        command += ["--pass", password]
    if "--auth-iterations" not in args:
        command += ["--auth-iterations", str(MIN_PBKDF2_ITERATIONS)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log,
                                env={**os.environ, **(env or {})})
    STARTED.append(proc)
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
        elif kind == "tls" and not server.tls_port:
            server.tls_port = int(where.rsplit(":", 1)[1])
        elif kind == "unix":
            server.unix_path = Path(where)
    return server


class RawConnection:
    """A blocking socket speaking kv's protocol by hand, for malformed and hostile input.

    With ``tls``, it connects to the server's TLS port through that context.
    """

    def __init__(self, server: ServerProcess, password: str | None = PASSWORD, *,
                 tls: ssl.SSLContext | None = None) -> None:
        import socket

        from kv_protocol.connection import ClientConnection
        from kv_protocol.framing import FrameDecoder

        if tls is None:
            self.sock = socket.create_connection((server.host, server.port), timeout=15)
        else:
            assert server.tls_port is not None, "the server has no TLS listener"
            raw = socket.create_connection((server.host, server.tls_port), timeout=15)
            self.sock = tls.wrap_socket(raw, server_hostname=server.host)
        self.conn = ClientConnection(password or "", name="raw")
        self.decoder = FrameDecoder()

    def handshake(self) -> None:
        from kv_protocol.connection import State

        self.sock.sendall(self.conn.data_to_send())
        while self.conn.state is State.HANDSHAKE:
            self.conn.receive_data(self.sock.recv(65536))
            if out := self.conn.data_to_send():
                self.sock.sendall(out)

    def call(self, *argv: object) -> object:
        """Send one command and return its reply (an error reply fails the test)."""
        from kv_protocol.framing import encode_frame
        from kv_protocol.messages import REPLY, decode_message

        self.sock.sendall(encode_frame(list(argv)))
        items: list[object] = []
        while not items:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            items = self.decoder.feed(data)
        [(kind, payload)] = [decode_message(item) for item in items]
        assert kind == REPLY, payload
        return payload

    def messages(self) -> list[tuple[int, object]]:
        """Every frame until the server closes the connection."""
        from kv_protocol.messages import decode_message

        found = []
        while data := self.sock.recv(65536):
            found += [decode_message(item) for item in self.decoder.feed(data)]
        return found

    def close(self) -> None:
        self.sock.close()


@dataclass
class RedisProcess:
    """A redis-server started by :func:`start_redis_server`."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = "127.0.0.1"

    def stop(self, timeout_s: float = 15.0) -> int:
        return stop_process(self.proc, "redis-server", signal.SIGTERM, timeout_s)

    def log(self) -> str:
        return self.log_path.read_text()


def redis_server_path() -> str | None:
    """Where redis-server is, or None when it is not installed."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis_server(work_dir: Path) -> RedisProcess:
    """Start redis-server on a free loopback port, without persistence; wait for PING."""
    executable = redis_server_path()
    assert executable is not None, "check redis_server_path() first"
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "redis.log"
    for _ in range(REDIS_START_ATTEMPTS):
        port = _free_port()
        command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(work_dir), "--logfile", str(log_path)]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port) and proc.poll() is None:  # ours, not a squatter's
                return RedisProcess(proc, port, log_path)
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    log = log_path.read_text() if log_path.exists() else ""
    raise AssertionError(f"redis-server did not start after {REDIS_START_ATTEMPTS} tries: {log}")
