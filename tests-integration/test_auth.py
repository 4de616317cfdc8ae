"""Authentication and the handshake, against a real server process."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import pytest

from integration_helpers import RawConnection, ServerProcess, start_server
from kv_client import Client, WrongPassError
from kv_protocol.errors import ProtoError
from kv_protocol.framing import encode_frame
from kv_protocol.handshake import HANDSHAKE_UUID
from kv_protocol.messages import ERROR


def error_of(messages: list[tuple[int, object]]) -> object:
    assert len(messages) == 1 and messages[0][0] == ERROR, messages
    return messages[0][1]


def test_wrong_password_is_refused(kv_server: ServerProcess) -> None:
    with pytest.raises(WrongPassError, match="invalid password"), kv_server.client(password="nope") as kv:
        kv.ping()
    with kv_server.client() as kv:
        assert kv.info("stats")["stats"]["total_auth_failures"] == 1


def test_wrong_uuid_gets_proto_then_close(kv_server: ServerProcess) -> None:
    raw = RawConnection(kv_server)
    hello = raw.conn.hello.to_wire()
    hello["uuid"] = "00000000-0000-0000-0000-000000000000"
    raw.sock.sendall(encode_frame(hello))
    error = error_of(raw.messages())
    assert isinstance(error, ProtoError) and "wrong handshake uuid" in error.message
    assert HANDSHAKE_UUID in error.message
    raw.close()


def test_garbage_before_the_handshake(kv_server: ServerProcess) -> None:
    raw = RawConnection(kv_server)
    raw.sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert isinstance(error_of(raw.messages()), ProtoError)
    raw.close()


def test_command_before_the_handshake(kv_server: ServerProcess) -> None:
    raw = RawConnection(kv_server)
    raw.sock.sendall(encode_frame(["GET", "k"]))
    assert getattr(error_of(raw.messages()), "code", None) == "NOAUTH"
    raw.close()


def test_handshake_deadline(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--handshake-timeout", "0.5")
    try:
        sock = socket.create_connection((server.host, server.port), timeout=15)
        started = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert time.monotonic() - started < 10
        assert b"handshake not completed within 0.5 s" in data
        sock.close()
    finally:
        assert server.stop() == 0


def test_default_password_file_and_default_iterations(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--auth-iterations", "600000", password=None)
    try:
        pass_file = tmp_path / "data" / "kv.pass"
        assert stat.S_IMODE(pass_file.stat().st_mode) == 0o600
        assert f"password in {pass_file}" in server.output[0]
        password = pass_file.read_text().strip()
        assert password not in server.output[0] and password not in server.log()
        with Client(server.host, server.port, password=password) as kv:
            assert kv.ping() == "PONG"
    finally:
        assert server.stop() == 0
