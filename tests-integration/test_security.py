"""The passwords never show, and the files that guard them are private (docs/security.md).

One real server runs with ``--verbose``, a distinctive password and a distinctive
read-only password, and is put through everything that prints or answers: failed
and successful handshakes (raw bytes included), commands, every INFO section,
CLIENT LIST, error replies, NOPERM, a second server refused by the lock, SIGKILL,
a start-up error on a corrupted file, and ``kv-server --help``. Then every byte it
said and wrote (log, stdout, stderr, replies, data files but kv.pass) is searched
for either password.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from integration_helpers import ServerProcess, start_server
from kv_client import Client, NoPermError, ServerError, WrongPassError, WrongTypeError
from kv_protocol.connection import ClientConnection, State

SECRET = "Qx7-unmistakable-Secret-p4ssw0rd"
READER_SECRET = "Rd9-unmistakable-Reader-p4ssw0rd"
SECRETS = (SECRET, READER_SECRET)


def raw_handshake(server: ServerProcess, password: str, *commands: list[object]) -> bytes:
    """Every byte the server sends to one connection: a handshake, then ``commands``."""
    received = b""
    conn = ClientConnection(password, name="raw")
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        sock.sendall(conn.data_to_send())
        while conn.state is State.HANDSHAKE and (data := sock.recv(65536)):
            received += data
            try:
                conn.receive_data(data)
            except ServerError:
                return received + sock.recv(65536)
            sock.sendall(conn.data_to_send())
        for command in commands:
            sock.sendall(conn.send_command(command))
            received += sock.recv(65536)
    return received


def run_kv_server(*args: str) -> str:
    """stdout and stderr of a kv-server expected to exit by itself."""
    result = subprocess.run([sys.executable, "-m", "kv_server", *args], capture_output=True,
                            text=True, timeout=60)
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def exercise(server: ServerProcess) -> list[str]:
    """Everything a client can make the server say, as text."""
    said: list[str] = []
    with pytest.raises(WrongPassError) as refused, server.client(password="not-" + SECRET) as kv:
        kv.ping()
    said.append(str(refused.value))
    said.append(repr(raw_handshake(server, "wrong password")))
    with server.client(name="writer") as kv:
        kv.set("greeting", "hello")
        kv.rpush("list", 1, 2, 3)
        said += [repr(kv.get("greeting")), repr(kv.info("all")), repr(kv.client_list())]
        for failing in (lambda: kv.lpush("greeting", 1), lambda: kv.execute("NO-SUCH-COMMAND")):
            with pytest.raises((WrongTypeError, ServerError)) as error:
                failing()
            said.append(str(error.value))
        with server.client(password=READER_SECRET, name="reader") as reader:
            said += [repr(reader.get("greeting")), repr(reader.info("all")), repr(kv.client_list())]
            with pytest.raises(NoPermError) as denied:
                reader.set("greeting", "changed")
            said.append(str(denied.value))
            assert kv.info("clients")["clients"]["readonly_clients"] == 1
        said.append(repr(kv.info("everything")))
    said.append(repr(raw_handshake(server, SECRET, ["INFO"], ["CLIENT", "LIST"], ["GET", "list"])))
    said.append(repr(raw_handshake(server, READER_SECRET, ["INFO"], ["DEL", "list"])))
    return said


def test_the_passwords_never_appear(tmp_path: Path) -> None:
    data, sock = tmp_path / "data", tmp_path / "kv.sock"
    reader_file = tmp_path / "reader.pass"
    reader_file.write_text(READER_SECRET + "\n")
    reader_file.chmod(0o600)
    server = start_server(data, "--verbose", "--appendfsync", "always", "--unix", str(sock),
                          "--readonly-pass-file", str(reader_file), password=SECRET)
    outputs = {"--help": run_kv_server("--help")}
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        outputs["replies"] = "\n".join(exercise(server))
        outputs["second server on the locked directory"] = run_kv_server(
            "--port", "0", "--dir", str(data), "--pass", SECRET, "--readonly-pass", READER_SECRET)
        assert "exit 1" in outputs["second server on the locked directory"]
    finally:
        server.stop(signal.SIGKILL)
    aof = bytearray((data / "kv.aof").read_bytes())
    aof[len(aof) // 2] ^= 0x01
    (data / "kv.aof").write_bytes(bytes(aof))
    outputs["start-up error"] = run_kv_server(
        "--port", "0", "--dir", str(data), "--pass", SECRET, "--readonly-pass", READER_SECRET,
        "--verbose")
    assert "exit 1" in outputs["start-up error"] and "kv.aof" in outputs["start-up error"]
    outputs["stdout"] = "".join(server.output)
    outputs["log (stderr)"] = server.log()
    assert "read-only" in outputs["log (stderr)"]  # the log did see both kinds of session
    files = {f"data file {path.name}": path.read_bytes() for path in data.rglob("*")
             if path.is_file() and path.name != "kv.pass"}
    assert any(name.endswith("kv.aof") for name in files)
    for secret in SECRETS:
        for name, text in outputs.items():
            assert secret not in text, f"{name} shows a password"
        for name, content in files.items():
            assert secret.encode() not in content, f"{name} holds a password"


def test_a_generated_password_file_is_private_and_never_shown(tmp_path: Path) -> None:
    data, sock = tmp_path / "data", tmp_path / "kv.sock"
    server = start_server(data, "--verbose", "--unix", str(sock), password=None)
    try:
        pass_file = data / "kv.pass"
        assert stat.S_IMODE(pass_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        password = pass_file.read_text().strip()
        with pytest.raises(WrongPassError), Client(server.host, server.port, password="x") as kv:
            kv.ping()
        with Client(unix_path=sock, password=password) as kv:
            said = repr([kv.info("all"), kv.client_list(), kv.set("k", 1)])
    finally:
        assert server.stop() == 0
    for text in (said, server.log(), "".join(server.output)):
        assert password not in text


def test_data_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """kv.db and the AOF hold every value in clear: 0600 even under umask 022."""
    data = tmp_path / "data"
    previous = os.umask(0o022)
    try:
        server = start_server(data)
    finally:
        os.umask(previous)
    with server.client() as kv:
        kv.set("k", "v")
        kv.save()
    assert server.stop() == 0
    files = [path for path in data.iterdir() if path.name.startswith(("kv.db", "kv.aof"))]
    assert "kv.db" in {path.name for path in files}
    assert any(path.name.startswith("kv.aof") for path in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
