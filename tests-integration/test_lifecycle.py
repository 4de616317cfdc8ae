"""Start-up, shutdown, kills and the Unix socket of a real process."""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from integration_helpers import PASSWORD, ServerProcess, start_server
from kv_client import Client, ConnectionError
from kv_client._core import encode_request
from kv_client._sync import SyncConnection


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_shut_down_gracefully_and_tell_clients(tmp_path: Path, sig: int) -> None:
    server = start_server(tmp_path / "data")
    kv = server.client()
    assert kv.ping() == "PONG"
    connection = SyncConnection(kv.config)  # a bare connection, to read the notice itself
    assert server.stop(sig) == 0
    assert connection.core.receive_replies(connection.sock.recv(65536)) == []
    assert connection.core.close_reason == "server is shutting down"
    connection.abort()
    # The client's pooled connection was closed while idle: it is dropped, and the
    # next command finds no server rather than a dead socket.
    with pytest.raises(ConnectionError, match="cannot connect"):
        kv.ping()
    kv.close()
    assert "shutting down gracefully" in server.log()


def test_client_kill_closes_the_other_connection(kv_server: ServerProcess, client: Client) -> None:
    with kv_server.client() as victim:
        victim_id = victim.client_id()
        bare = SyncConnection(victim.config)  # a bare connection, to read the notice itself
        [bare_id] = bare.request(encode_request(victim.config, [("CLIENT", "ID")]), 1, 5.0)
        assert client.client_kill(victim_id, bare_id) == 2
        # Read the notice before writing: a write to the closed socket could draw a
        # reset that discards it.
        assert bare.core.receive_replies(bare.sock.recv(65536)) == []
        assert bare.core.close_reason == f"killed by client {client.client_id()}"
        bare.abort()
        # The victim's pooled connection was killed while idle: it is dropped, and
        # the next command runs on a new one.
        assert victim.ping() == "PONG"
        assert victim.client_id() not in (victim_id, bare_id)


def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "kv.sock"
    server = start_server(tmp_path / "data", "--unix", str(path))
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with server.client() as kv:
            kv.set("via", "unix")
            assert kv.client_list()[0]["transport"] == "unix"
        with Client(server.host, server.port, password=PASSWORD) as kv:
            assert kv.get("via") == "unix"
    finally:
        assert server.stop() == 0
    assert not path.exists()


def test_verbose_logs_commands_but_never_values_or_the_password(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--verbose")
    try:
        with server.client(name="logger") as kv:
            kv.set("logged-key", "do-not-log-this-value")
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "client 1 connected" in log and "SET 'logged-key' <text 21>" in log
    assert "do-not-log-this-value" not in log and PASSWORD not in log


def test_address_in_use_fails_with_a_clear_message(kv_server: ServerProcess, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kv_server", "--port", str(kv_server.port), "--pass", "x",
         "--dir", str(tmp_path / "other")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "kv-server:" in result.stderr and "ddress already in use" in result.stderr
