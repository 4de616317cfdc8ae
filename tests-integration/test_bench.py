"""kv-bench as a subprocess against a real kv-server (and redis-server when installed)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from integration_helpers import PASSWORD, ServerProcess, redis_server_path, start_redis_server

KV_BENCH = [sys.executable, "-c", "import sys; from kv_tools._bench import main; sys.exit(main())"]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KV_BENCH, *args], capture_output=True, text=True, timeout=180)


def test_bench_against_kv(kv_server: ServerProcess) -> None:
    result = run_bench("-p", str(kv_server.port), "-a", PASSWORD, "-c", "4", "--procs", "2",
                       "-n", "2000", "-P", "4", "-t", "ping,set,get", "-r", "100", "--seconds", "20")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()
            if line.split()[:1] in (["ping"], ["set"], ["get"])]
    assert [(row[0], row[1]) for row in rows] == [("ping", "kv"), ("set", "kv"), ("get", "kv")]
    assert all(float(row[2].replace(",", "")) > 0 for row in rows)
    assert "4 connections over 2 processes, pipeline 4" in result.stdout


def test_bench_reports_a_server_it_cannot_reach(kv_server: ServerProcess) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_bench("-p", str(port), "-a", PASSWORD, "-n", "10")
    assert result.returncode == 1 and "kv-bench: cannot connect" in result.stderr


@pytest.mark.skipif(redis_server_path() is None,
                    reason="redis-server is not installed (apt-get install redis-server)")
def test_bench_side_by_side_with_redis(kv_server: ServerProcess, tmp_path: Path) -> None:
    redis = start_redis_server(tmp_path / "redis")
    port = redis.port
    try:
        result = run_bench("-p", str(kv_server.port), "-a", PASSWORD, "-c", "4", "-n", "2000",
                           "-t", "set,get", "--redis", f"127.0.0.1:{port}")
        assert result.returncode == 0, result.stderr
        kv_rows = [line for line in result.stdout.splitlines() if line.split()[1:2] == ["kv"]]
        assert len(kv_rows) == 2 and all(line.rstrip().endswith("x") for line in kv_rows)
        assert sum(line.split()[1:2] == ["redis"] for line in result.stdout.splitlines()) == 2
    finally:
        redis.stop()
