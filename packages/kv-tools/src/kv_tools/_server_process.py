"""kv-server as a child process, for the measurements that must restart or kill it.

Also what kv-bench reads about a local server process: its CPU time and, for
redis-server, its pid.

Rules:

1. The server listens on 127.0.0.1 only, on a port it picks (``--port 0``); its
   ready line on stdout names the port. Its stdout and stderr go to files beside
   its data directory, never to a pipe nobody reads.
2. Every wait is bounded: for the ready line (``start_timeout_s``), and for the
   exit after SIGTERM (``STOP_TIMEOUT_S``, then SIGKILL and an error).
3. The password lives in a file of mode 0600, not on the command line.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS

from ._direct import DEFAULT_TIMEOUT_S, DirectConnection
from ._wire import RespWire

READY: Final = re.compile(r"ready on tcp 127\.0\.0\.1:(?P<port>\d+)")
POLL_S: Final = 0.005  # how often the ready line is looked for; the start-up time's resolution
STOP_TIMEOUT_S: Final = 60.0  # SIGTERM flushes and fsyncs the AOF and stops a BGSAVE child
KILL_TIMEOUT_S: Final = 10.0  # after SIGKILL only the kernel's clean-up remains
PASSWORD_BYTES: Final = 24  # a throwaway password for servers only this process talks to
LOG_TAIL_CHARS: Final = 2000  # how much of the server's log an error message quotes


def proc_cpu_s(pid: int | None) -> float | None:
    """A local process's CPU time so far (user + system, all its threads), from /proc.

    None without a pid or without /proc (not Linux): the figures that need it are left out.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def is_local(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


def redis_pid(host: str, port: int) -> int | None:
    """The process id of the redis-server at ``host:port`` (INFO server), when it is local."""
    if not is_local(host):
        return None
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(RespWire(host, port).encode(["INFO", "server"]))
        data = b""
        while b"process_id:" not in data or not data.endswith(b"\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def password_file(directory: Path) -> tuple[Path, str]:
    """A new random password in ``directory/bench.pass`` (mode 0600), and the password."""
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    path = directory / "bench.pass"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(password + "\n")
    return path, password


@dataclass
class KvServer:
    """A started kv-server: its process, address and how long it took to be ready."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    password: str = field(repr=False)
    ready_s: float
    """From spawning the process to its ready line: interpreter start, imports, loading."""
    log_path: Path

    def connect(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> DirectConnection:
        return DirectConnection("127.0.0.1", self.port, self.password, name="kv-bench-persistence",
                                timeout_s=timeout_s)

    def stop(self) -> None:
        """SIGTERM, then wait for a clean exit (status 0).

        Raises:
            RuntimeError: it did not exit in time (it is then killed) or exited with an error.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RuntimeError(f"kv-server did not stop within {STOP_TIMEOUT_S:g} s of SIGTERM; "
                                   "killed it") from None
        if self.proc.returncode != 0:
            raise RuntimeError(f"kv-server exited with status {self.proc.returncode}: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, folded or saved; what is in the files stays."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(KILL_TIMEOUT_S)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""


def start_kv_server(data_dir: Path, password_path: Path, password: str, *options: str,
                    start_timeout_s: float) -> KvServer:
    """Run ``python -m kv_server`` on ``data_dir`` and wait for its ready line.

    Args:
        options: more kv-server flags, e.g. ``--appendfsync always`` or ``--binary``.
        start_timeout_s: how long loading may take; past it the server is killed.

    Raises:
        RuntimeError: it exited or did not get ready in time (quoting its log).
    """
    out_path = data_dir.with_name(data_dir.name + ".out")
    log_path = data_dir.with_name(data_dir.name + ".log")
    command = [sys.executable, "-m", "kv_server", "--bind", "127.0.0.1", "--port", "0",
               "--dir", str(data_dir), "--pass-file", str(password_path),
               "--auth-iterations", str(MIN_PBKDF2_ITERATIONS), *options]
    with out_path.open("wb") as out, log_path.open("ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=log, stdin=subprocess.DEVNULL)
    deadline = started + start_timeout_s
    server = KvServer(proc, data_dir, 0, password, 0.0, log_path)
    while True:
        match = READY.search(out_path.read_text(errors="replace"))
        if match:
            server.port, server.ready_s = int(match["port"]), time.perf_counter() - started
            return server
        if proc.poll() is not None:
            raise RuntimeError(f"kv-server exited with status {proc.returncode} before it was ready: "
                               f"{server.log_tail()}")
        if time.perf_counter() > deadline:
            server.kill()
            raise RuntimeError(f"kv-server was not ready within {start_timeout_s:g} s: "
                               f"{server.log_tail()}")
        time.sleep(POLL_S)
