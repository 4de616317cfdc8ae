"""kv-convert against a real server's files: --from-aof rebuilds what start-up would.

A server saves a snapshot, takes more writes (now only in its AOF) and is killed
with SIGKILL. ``kv-convert --from-aof`` builds a snapshot from that directory
offline; a fresh server on a directory holding only that snapshot must hold the
same keys, values and deadlines as the original server on its own directory.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integration_helpers import ServerProcess, start_server
from kv_client import Client
from kv_protocol.records.snapshot import SnapshotReader

KV_CONVERT = Path(sys.executable).with_name("kv-convert")
TIMEOUT_S = 30


def kv_convert(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KV_CONVERT, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False)


def dataset(kv: Client) -> dict[Any, tuple[str, Any, int]]:
    """Every key: (type, value, absolute deadline or -1)."""
    found: dict[Any, tuple[str, Any, int]] = {}
    for key in kv.keys("*"):
        kind = kv.type(key)
        value = {"string": kv.get, "list": lambda k: kv.lrange(k, 0, -1), "hash": kv.hgetall}[kind](key)
        found[key] = (kind, value, kv.pexpiretime(key))
    return found


def write_then_kill(server: ServerProcess) -> dict[Any, tuple[str, Any, int]]:
    with server.client(timeout=10) as kv:
        kv.set("before-save", 1)
        kv.rpush("list", "a", b"\x00b", 2**70)
        kv.hset("hash", {"f": 1.5, b"g": math.inf})
        kv.set("deleted-later", "x")
        kv.set("expires", "soon", ex=1000)
        assert kv.save()
        # Only in the AOF from here on: what --from-aof must replay.
        kv.set("after-save", b"\xff\x00")
        kv.rpush("list", "c")
        kv.hset("hash", {"h": None})
        kv.delete("deleted-later")
        kv.expire("before-save", 5000)
        for i in range(200):
            kv.set(f"bulk:{i}", i)
        expected = dataset(kv)
    server.stop(signal.SIGKILL)
    assert server.data_dir.joinpath("kv.aof").stat().st_size > 0
    return expected


@pytest.mark.parametrize("encoding", ["plaintext", "binary"])
def test_from_aof_snapshot_restores_what_the_killed_server_held(tmp_path: Path, encoding: str) -> None:
    expected = write_then_kill(start_server(tmp_path / "data"))
    original = {path.name: path.read_bytes() for path in (tmp_path / "data").iterdir()}
    rebuilt = tmp_path / "rebuilt" / "kv.db"
    rebuilt.parent.mkdir()
    result = kv_convert("--from-aof", tmp_path / "data", rebuilt, "--to", encoding)
    assert result.returncode == 0, result.stderr
    assert {path.name: path.read_bytes() for path in (tmp_path / "data").iterdir()} == original
    assert sorted(p.name for p in rebuilt.parent.iterdir()) == ["kv.db"]  # no temporary copy left

    reader = SnapshotReader()
    reader.feed(rebuilt.read_bytes())
    assert reader.finish().encoding == encoding

    fresh = start_server(rebuilt.parent)
    try:
        with fresh.client(timeout=10) as kv:
            assert dataset(kv) == expected
            assert kv.info("persistence")["persistence"]["loaded_aof_records"] == 0  # all from kv.db
    finally:
        assert fresh.stop() == 0, fresh.log()


def test_from_aof_refuses_a_directory_a_running_server_holds(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with server.client(timeout=10) as kv:
            kv.set("k", 1)
        result = kv_convert("--from-aof", tmp_path / "data", tmp_path / "out.db")
        assert result.returncode == 2
        assert f"{tmp_path / 'data'} is in use by a running kv-server" in result.stderr
        assert not (tmp_path / "out.db").exists()
    finally:
        assert server.stop() == 0, server.log()


def test_convert_the_servers_snapshot_and_start_from_it(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with server.client(timeout=10) as kv:
            kv.rpush("l", 1, 2.5, b"x")
            kv.set("s", {"nested": [1, {2: b"y"}]})
            assert kv.save()
            expected = dataset(kv)
    finally:
        assert server.stop() == 0, server.log()
    (tmp_path / "binary").mkdir()
    result = kv_convert(tmp_path / "data" / "kv.db", tmp_path / "binary" / "kv.db")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "binary" / "kv.db").read_bytes()[:3] == b"\xd9\xd9\xf7"
    fresh = start_server(tmp_path / "binary")
    try:
        with fresh.client(timeout=10) as kv:
            assert dataset(kv) == expected
    finally:
        assert fresh.stop() == 0, fresh.log()
