"""Persistence through real processes and real files: formats, damage, saves, faults."""

from __future__ import annotations

import math
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from integration_helpers import PASSWORD, ServerProcess, start_server
from kv_client import BusyError, Client, MisconfError

TYPED: dict[Any, Any] = {
    "text": "héllo\nworld",
    b"raw\x00key": b"\x00\xff bytes",
    "int": 12345,
    "big": 2**64 + 1,
    "negative-big": -(2**70),
    "float": 1.5,
    "whole-float": 2.0,
    "inf": float("inf"),
    "ninf": float("-inf"),
    "true": True,
    "null": None,
    "nested": {"a": [1, 2.5, {"b": b"\x01"}], 3: "int key", b"k": None, None: [], "$x": 1},
}


def _write_typed(kv: Client) -> None:
    for key, value in TYPED.items():
        kv.set(key, value)
    kv.set("nan", float("nan"))
    kv.rpush("list", 1, "1", 1.0, True, b"1", None, [1], {"k": 1})
    kv.hset("hash", {"f": 1, b"g": b"2", "h": {"nested": [float("inf")]}})
    kv.set("ttl", 1, ex=1000)


def _check_typed(kv: Client) -> None:
    for key, value in TYPED.items():
        got = kv.get(key)
        assert got == value and type(got) is type(value), key
    assert math.isnan(kv.get("nan"))
    items = kv.lrange("list", 0, -1)
    assert items == [1, "1", 1.0, True, b"1", None, [1], {"k": 1}]
    assert [type(item) for item in items][:5] == [int, str, float, bool, bytes]
    assert kv.hgetall("hash") == {"f": 1, b"g": b"2", "h": {"nested": [float("inf")]}}
    assert 990 < kv.ttl("ttl") <= 1000


def _kill(server: ServerProcess) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    server.stop()


def _start_fails(data: Path, *args: str) -> str:
    """Start a server that must refuse to start; its error output."""
    command = [sys.executable, "-m", "kv_server", "--port", "0", "--dir", str(data),
               "--pass", PASSWORD, *args]
    done = subprocess.run(command, capture_output=True, timeout=60)
    assert done.returncode == 1, done.stderr.decode()
    return done.stderr.decode()


def test_every_type_survives_the_aof_and_both_snapshot_formats(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    with server.client() as kv:
        _write_typed(kv)
    _kill(server)  # only the AOF has the data
    server = start_server(data)
    with server.client() as kv:
        _check_typed(kv)
        assert kv.info("persistence")["persistence"]["loaded_aof_records"] > 0
        kv.save()
    assert (data / "kv.db").read_bytes()[:1] == b"{"
    server.stop()
    server = start_server(data)  # from the plaintext snapshot alone
    with server.client() as kv:
        _check_typed(kv)
        assert kv.convert() == "Background conversion to binary started"
        _wait_for_bgsave(kv)
    assert (data / "kv.db").read_bytes()[:3] == b"\xd9\xd9\xf7"
    assert (data / "kv.db.old").read_bytes()[:1] == b"{"
    _kill(server)
    server = start_server(data)  # from the binary snapshot
    with server.client() as kv:
        _check_typed(kv)
        assert kv.info("persistence")["persistence"]["snapshot_format"] == "binary"
    assert server.stop() == 0


def _wait_for_bgsave(kv: Client) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = kv.info("persistence")["persistence"]
        if not info["bgsave_in_progress"]:
            assert info["last_save_status"] == "ok", info
            return info
        time.sleep(0.02)
    raise AssertionError("BGSAVE did not finish within 60 s")


def _aof_with_records(data: Path) -> bytes:
    server = start_server(data)
    with server.client() as kv:
        for i in range(5):
            kv.set(f"k{i}", i)
    _kill(server)
    return (data / "kv.aof").read_bytes()


def test_a_torn_last_record_needs_the_operators_permission(tmp_path: Path) -> None:
    data = tmp_path / "data"
    aof = _aof_with_records(data)
    last_start = aof.rindex(b"\n", 0, len(aof) - 1) + 1
    cuts = range(last_start + 1, len(aof))
    for cut in (cuts[0], cuts[len(cuts) // 2], cuts[-1]):
        (data / "kv.aof").write_bytes(aof[:cut])
        message = _start_fails(data)
        assert "kv.aof" in message and "line 6" in message and f"byte offset {last_start}" in message
        assert "--aof-load-truncated" in message and "kv-aof-check --fix" in message
    for cut in cuts:  # every offset inside the last record
        (data / "kv.aof").write_bytes(aof[:cut])
        server = start_server(data, "--aof-load-truncated")
        with server.client() as kv:
            assert kv.mget(*[f"k{i}" for i in range(5)]) == [0, 1, 2, 3, None]
        assert "torn last record" in server.log()
        _kill(server)  # leave the directory as it is: the next cut rewrites kv.aof
        (data / "kv.db").unlink()


def test_a_corrupt_record_stops_start_up_even_with_truncation_allowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    aof = bytearray(_aof_with_records(data))
    third = aof.index(b"\n", aof.index(b"\n", aof.index(b"\n") + 1) + 1) + 1  # line 4
    aof[third + len(aof[third:].split(b"\n")[0]) - 3] ^= 0x04  # a bit inside the command
    (data / "kv.aof").write_bytes(bytes(aof))
    for args in ((), ("--aof-load-truncated",)):
        message = _start_fails(data, *args)
        assert f"line 4, byte offset {third}" in message, message
        assert "kv-aof-check" in message


@pytest.mark.parametrize("damage", ["header", "body", "truncated"])
def test_a_damaged_snapshot_stops_start_up(tmp_path: Path, damage: str) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    with server.client() as kv:
        kv.mset({f"k{i}": i for i in range(100)})
        kv.save()
    server.stop()
    snapshot = bytearray((data / "kv.db").read_bytes())
    if damage == "header":
        snapshot[2] ^= 0x20
    elif damage == "body":
        snapshot[len(snapshot) // 2] ^= 0x01
    else:
        del snapshot[len(snapshot) * 2 // 3:]
    (data / "kv.db").write_bytes(bytes(snapshot))
    message = _start_fails(data)
    assert "kv.db" in message and "byte offset" in message and "kv.db.old" in message


def test_writes_during_bgsave_all_survive(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:
        with server.client() as kv:
            i = 0
            while not stop.is_set() and i < 200_000:
                kv.rpush("during", i)
                acknowledged.append(i)
                i += 1

    with server.client() as kv:
        kv.mset({f"bulk:{i}": i for i in range(50_000)})
        writer = threading.Thread(target=write)
        writer.start()
        for _ in range(3):
            kv.bgsave()
            _wait_for_bgsave(kv)
        stop.set()
        writer.join(30)
        deadline = time.monotonic() + 10  # the flusher deletes covered segments on its next turn
        while kv.info("persistence")["persistence"]["aof_segments"] != 1:
            assert time.monotonic() < deadline, "covered AOF segments were not deleted"
            time.sleep(0.01)
    _kill(server)
    server = start_server(data)
    with server.client() as kv:
        assert kv.lrange("during", 0, -1) == acknowledged
        assert kv.dbsize() == 50_001
    assert server.stop() == 0


def test_one_data_directory_one_server(kv_server: ServerProcess) -> None:
    message = _start_fails(kv_server.data_dir)
    assert "in use by another kv-server" in message
    assert f"pid {kv_server.proc.pid}" in message


def test_writes_are_refused_while_the_aof_cannot_be_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    limit = (data / "kv.aof").stat().st_size + 4096
    # The file size limit makes write() fail with EFBIG (Python ignores SIGXFSZ):
    # a full disk, for this process only.
    resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    acknowledged = {}
    with server.client() as kv:
        refusal = None
        for i in range(1000):
            try:
                kv.set(f"k{i}", i)
            except MisconfError as exc:
                refusal = exc
                break
            acknowledged[f"k{i}"] = i
        assert refusal is not None and "not persisted" in str(refusal) and "kv.aof" in str(refusal)
        with pytest.raises(MisconfError, match="writes are refused"):
            kv.set("refused", 1)
        assert kv.get("k0") == 0  # reads keep working
        info = kv.info("persistence")["persistence"]
        assert info["aof_last_write_status"] == "err" and "kv.aof" in info["aof_last_error"]
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        deadline = time.monotonic() + 10
        while True:
            try:
                kv.set("after", 1)
                break
            except MisconfError:
                assert time.monotonic() < deadline, "writes still refused 10 s after the disk recovered"
                time.sleep(0.1)
    assert "writes are refused" in server.log()
    _kill(server)
    server = start_server(data)
    with server.client() as kv:
        for key, value in acknowledged.items():
            assert kv.get(key) == value
        assert kv.get("after") == 1
    assert server.stop() == 0


def test_info_persistence_and_lastsave(client: Client) -> None:
    before = client.lastsave()
    client.set("k", 1)
    info = client.info("persistence")["persistence"]
    assert info["aof_fsync_policy"] == "everysec"
    assert info["changes_since_last_save"] == 1
    assert info["aof_size"] > 0 and info["aof_last_write_status"] == "ok"
    time.sleep(1.01)
    assert client.save() is True
    assert client.lastsave() > before
    assert client.info("persistence")["persistence"]["changes_since_last_save"] == 0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs Linux's /proc/PID/task/PID/children")
    return [int(child) for child in path.read_text().split()]


def _saving_in_background(data: Path, keys: int = 300_000) -> ServerProcess:
    """A server with ``keys`` keys whose BGSAVE has just started."""
    server = start_server(data)
    with server.client(timeout=60) as kv:
        for start in range(0, keys, 10_000):
            kv.mset({f"key:{i:012}": b"abc" for i in range(start, start + 10_000)})
        kv.bgsave()
    return server


def test_a_killed_server_takes_its_bgsave_child_with_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = _saving_in_background(data)
    children = _children(server.proc.pid)
    assert children, "the BGSAVE child finished before the test looked"
    _kill(server)
    deadline = time.monotonic() + 5
    while any(Path(f"/proc/{child}").exists() for child in children):
        assert time.monotonic() < deadline, "the BGSAVE child outlived its server"
        time.sleep(0.01)
    server = start_server(data)  # the directory is free, and nothing was lost
    with server.client(timeout=60) as kv:
        assert kv.dbsize() == 300_000
    assert server.stop() == 0


def test_sigterm_during_bgsave_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = _saving_in_background(data)
    assert server.stop(signal.SIGTERM) == 0
    assert "background save abandoned" in server.log()
    assert not (data / "kv.db.tmp").exists()
    server = start_server(data)
    with server.client(timeout=60) as kv:
        assert kv.dbsize() == 300_000
    assert server.stop() == 0


def test_persist_saves_in_the_background_when_data_changed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--persist", "0.2")
    with server.client() as kv:
        kv.set("k", 1)
        deadline = time.monotonic() + 10
        while kv.info("persistence")["persistence"]["saves"] == 0:
            assert time.monotonic() < deadline, "no background save within 10 s"
            time.sleep(0.05)
        info = _wait_for_bgsave(kv)
        assert info["changes_since_last_save"] == 0
        time.sleep(0.5)  # nothing changed: no more saves
        assert kv.info("persistence")["persistence"]["saves"] == info["saves"]
    assert (tmp_path / "data" / "kv.db").exists()
    assert server.stop() == 0


def test_back_to_back_bgsaves_never_truncate_a_finished_snapshot(tmp_path: Path) -> None:
    """A BGSAVE started the moment the previous child exits, while its file is still
    being installed, must wait: its child would open kv.db.tmp and truncate the
    finished snapshot just before it is renamed to kv.db (a crash then left an
    empty kv.db)."""
    server = start_server(tmp_path / "data")
    with server.client() as kv:
        kv.mset({f"k{i}": i for i in range(2000)})
        started = 0
        deadline = time.monotonic() + 20
        while started < 40 and time.monotonic() < deadline:
            try:
                kv.bgsave()
                started += 1
            except BusyError:
                continue
            status = kv.info("persistence")["persistence"]
            assert status["last_save_status"] == "ok", status
        _wait_for_bgsave(kv)
        assert started == 40
    _kill(server)
    server = start_server(tmp_path / "data")
    with server.client() as kv:
        assert kv.dbsize() == 2000
    assert server.stop() == 0
