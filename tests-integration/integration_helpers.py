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
from collections.abc import Callable
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


# ---------------------------------------------------------------------------------------
# Helpers for the transaction, pub/sub and blocking tests: connections that keep pushes
# apart from replies, kv_protocol-only child processes, and the AOF's commands.
# ---------------------------------------------------------------------------------------

WORKER_LIMIT_S = 30.0
"""The longest a worker process may live: every loop in one is bounded by it."""
WORKERS: list[subprocess.Popen[bytes]] = []
"""Every worker started, so that a failed test leaves none running (:func:`kill_workers`)."""


class PushConnection(RawConnection):
    """A :class:`RawConnection` that pipelines, and reads replies, errors and pushes in order.

    Frames read but not yet asked for wait in ``backlog``, so no push is ever lost
    between calls.
    """

    def __init__(self, server: ServerProcess, password: str | None = PASSWORD) -> None:
        super().__init__(server, password)
        self.backlog: list[tuple[int, object]] = []
        self.handshake()

    def send(self, *commands: list[object]) -> None:
        """Send ``commands`` in one write (a pipeline); read nothing."""
        from kv_protocol.framing import encode_frame

        self.sock.sendall(b"".join(encode_frame(list(command)) for command in commands))

    def _fill(self, deadline: float) -> bool:
        """Read once more; False at the deadline; an AssertionError at EOF."""
        from kv_protocol.messages import decode_message

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return False
        assert data, f"the server closed the connection; unread: {self.backlog}"
        self.backlog += [decode_message(item) for item in self.decoder.feed(data)]
        return True

    def read(self, count: int, timeout_s: float = 10.0) -> list[tuple[int, object]]:
        """The next ``count`` messages of any kind, in arrival order."""
        deadline = time.monotonic() + timeout_s
        while len(self.backlog) < count:
            if not self._fill(deadline):
                raise AssertionError(f"{count} messages expected within {timeout_s} s, "
                                     f"got {self.backlog}")
        found, self.backlog = self.backlog[:count], self.backlog[count:]
        return found

    def read_for(self, seconds: float) -> list[tuple[int, object]]:
        """Every message that arrives within ``seconds`` (and any already read)."""
        deadline = time.monotonic() + seconds
        while self._fill(deadline):
            pass
        found, self.backlog = self.backlog, []
        return found

    def quiet(self, seconds: float = 0.2) -> bool:
        """True when nothing arrives within ``seconds``."""
        return not self.backlog and not self._fill(time.monotonic() + seconds)

    def request(self, *argv: object, timeout_s: float = 10.0) -> object:
        """Send one command and return its reply; an error reply fails the test. Pushes
        that arrive first stay in ``backlog``."""
        from kv_protocol.messages import PUSH, REPLY

        self.send(list(argv))
        deadline = time.monotonic() + timeout_s
        at = 0
        while True:
            while at < len(self.backlog) and self.backlog[at][0] == PUSH:
                at += 1
            if at < len(self.backlog):
                kind, payload = self.backlog.pop(at)
                assert kind == REPLY, f"{argv!r}: {payload!r}"
                return payload
            if not self._fill(deadline):
                raise AssertionError(f"no reply to {argv!r} within {timeout_s} s")

    def error(self, *argv: object, timeout_s: float = 10.0) -> Any:
        """Send one command that must fail; its ServerError."""
        from kv_protocol.messages import ERROR

        self.send(list(argv))
        [(kind, payload)] = self.read(1, timeout_s)
        assert kind == ERROR, f"{argv!r} should fail, got {payload!r}"
        return payload

    def closed(self, timeout_s: float = 10.0) -> list[tuple[int, object]]:
        """Every message until the server closes the connection (within ``timeout_s``)."""
        from kv_protocol.messages import decode_message

        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                found, self.backlog = self.backlog, []
                return found
            self.backlog += [decode_message(item) for item in self.decoder.feed(data)]
        raise AssertionError(f"the server did not close the connection within {timeout_s} s")


Connect = Callable[[], PushConnection]
"""Opens an authenticated connection (the ``connect`` fixtures of conftest.py)."""


def wait_until(predicate: Any, timeout_s: float = 10.0, what: str = "the condition") -> None:
    """Poll ``predicate`` every few milliseconds until it is true; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.005)


def client_entry(admin: PushConnection, client_id: int) -> dict[str, Any] | None:
    """CLIENT LIST's entry for ``client_id``, or None once it is gone."""
    for entry in admin.request("CLIENT", "LIST"):  # type: ignore[attr-defined]
        if entry["id"] == client_id:
            return entry  # type: ignore[no-any-return]
    return None


def wait_blocked(admin: PushConnection, client_id: int, timeout_s: float = 10.0) -> None:
    """Wait until CLIENT LIST shows ``client_id`` blocked."""
    wait_until(lambda: (client_entry(admin, client_id) or {}).get("blocked") is True,
               timeout_s, f"client {client_id} blocking")


def aof_commands(data_dir: Path) -> list[list[Any]]:
    """The commands of every complete record in ``data_dir/kv.aof``, in order."""
    from kv_protocol.records.aof import AofReader

    reader = AofReader()
    records = reader.feed((data_dir / "kv.aof").read_bytes())
    reader.finish(allow_torn=True)
    return [record.argv for record in records]


def vm_rss_kib(pid: int) -> int:
    """A process's resident set size in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


WORKER_PRELUDE = '''
import socket, sys, time, cbor2
from kv_protocol.connection import ClientConnection, State
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import ERROR, PUSH, REPLY, decode_message

HOST, PORT, PASSWORD = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ARGS = cbor2.loads(bytes.fromhex(sys.argv[4]))
DEADLINE = time.monotonic() + float(sys.argv[5])

def emit(tag, value=None):
    print(tag, cbor2.dumps(value).hex(), flush=True)

class Raw:
    def __init__(self):
        self.sock = socket.create_connection((HOST, PORT), timeout=DEADLINE - time.monotonic())
        conn = ClientConnection(PASSWORD, name="worker")
        self.sock.sendall(conn.data_to_send())
        while conn.state is State.HANDSHAKE:
            conn.receive_data(self.sock.recv(65536))
            if out := conn.data_to_send():
                self.sock.sendall(out)
        self.decoder, self.backlog = FrameDecoder(), []

    def send(self, *commands):
        self.sock.sendall(b"".join(encode_frame(list(c)) for c in commands))

    def next(self):
        while not self.backlog:
            self.sock.settimeout(max(DEADLINE - time.monotonic(), 0.001))
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the server closed the connection")
            self.backlog += [decode_message(item) for item in self.decoder.feed(data)]
        return self.backlog.pop(0)

    def call(self, *argv):
        self.send(list(argv))
        kind, payload = self.next()
        if kind != REPLY:
            raise AssertionError(f"{argv!r} answered {kind} {payload!r}")
        return payload
'''
"""The start of every worker script: a connection built from kv_protocol alone (kv_client
may be mid-rewrite), ``ARGS`` (any CBOR value), ``DEADLINE``, and ``emit(tag, value)``,
which prints one line ``tag <CBOR as hex>`` for :meth:`Worker.expect`."""


class Worker:
    """A ``python -c`` child process that runs ``WORKER_PRELUDE`` + ``body`` against a server.

    Its lines on stdout are events ``tag <hex CBOR>``; :meth:`expect` waits for one.
    """

    def __init__(self, server: ServerProcess, body: str, args: object = None,
                 limit_s: float = WORKER_LIMIT_S) -> None:
        import cbor2

        command = [sys.executable, "-c", WORKER_PRELUDE + body, server.host, str(server.port),
                   server.password or "", cbor2.dumps(args).hex(), str(limit_s)]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        WORKERS.append(self.proc)
        self._buffer = b""

    def expect(self, tag: str, timeout_s: float = 20.0) -> Any:
        """The value of the next event, which must be ``tag``."""
        import cbor2

        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.proc.stdout], [], [], max(remaining, 0))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if readable else b""
            if not chunk:
                self.proc.kill()
                _, err = self.proc.communicate()
                raise AssertionError(f"worker: no {tag!r} event within {timeout_s} s "
                                     f"(stdout {self._buffer!r}); stderr:\n{err.decode()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        got, _, value = line.decode().partition(" ")
        assert got == tag, f"worker: expected event {tag!r}, got {line!r}"
        return cbor2.loads(bytes.fromhex(value))

    def finish(self, timeout_s: float = 20.0) -> None:
        """Wait for a clean exit."""
        try:
            _, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"worker did not finish in {timeout_s} s: {err.decode()}") from None
        assert self.proc.returncode == 0, err.decode()

    def kill(self) -> None:
        """SIGKILL it and reap it."""
        self.proc.kill()
        self.proc.communicate()


def kill_workers() -> None:
    """Kill and reap every worker still running (for an autouse fixture)."""
    for proc in WORKERS:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    WORKERS.clear()
