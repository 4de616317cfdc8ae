"""kv-server as kv-bench's child process: ready line, password file, bounded waits, clean stop."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kv_tools._direct import DirectConnection, figure
from kv_tools._server_process import KvServer, password_file, start_kv_server

START_TIMEOUT_S = 30.0


@pytest.fixture
def server(tmp_path: Path) -> KvServer:
    path, password = password_file(tmp_path)
    return start_kv_server(tmp_path / "data", path, password, start_timeout_s=START_TIMEOUT_S)


def test_the_password_file_is_private_and_fresh(tmp_path: Path) -> None:
    path, password = password_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == password + "\n" and len(password) >= 32
    assert password_file(tmp_path)[1] != password


def test_a_started_server_answers_on_loopback_and_stops_cleanly(server: KvServer) -> None:
    try:
        assert server.port > 0 and server.ready_s > 0
        assert "password" not in repr(server)
        conn = server.connect()
        try:
            assert conn.call("PING") == "PONG"
            info = conn.info("server")
            assert info["listeners"] == [f"tcp 127.0.0.1:{server.port}"]
            assert figure(conn.info("persistence"), "loaded_keys") == 0
        finally:
            conn.close()
    finally:
        server.stop()
    assert server.proc.returncode == 0


def test_error_replies_and_missing_figures_raise(server: KvServer) -> None:
    try:
        conn: DirectConnection = server.connect()
        try:
            with pytest.raises(RuntimeError, match="error reply"):
                conn.call("NOSUCHCOMMAND")
            with pytest.raises(RuntimeError, match="no number 'absent'"):
                figure(conn.info("persistence"), "absent")
            with pytest.raises(RuntimeError, match="no number 'aof_file'"):
                figure(conn.info("persistence"), "aof_file")
        finally:
            conn.close()
    finally:
        server.kill()
    assert server.proc.returncode is not None


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    path, password = password_file(tmp_path)
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 2 before it was ready.*--no-such-flag"):
        start_kv_server(tmp_path / "data", path, password, "--no-such-flag", start_timeout_s=START_TIMEOUT_S)


def test_waiting_for_the_ready_line_is_bounded(tmp_path: Path) -> None:
    path, password = password_file(tmp_path)
    with pytest.raises(RuntimeError, match=r"not ready within 0\.001 s"):
        start_kv_server(tmp_path / "data", path, password, start_timeout_s=0.001)
