"""Mutated data directories: kv-server either starts and serves, or refuses in one line.

test_persistence.py and test_aof_check.py check chosen damage (a flipped bit, a
torn tail, a bad header) and the exact messages. Here hypothesis chooses the damage:
bit flips, truncation, inserted bytes, duplicated, dropped or swapped lines, and
mutated AOF commands whose checksum is then recomputed (so replay itself meets
them), in the snapshot, the AOF or both. Whatever the damage:

- kv-server starts and answers, and stops cleanly; or it exits with status 1 and
  one line on stderr, ``kv-server: <path of kv.db or kv.aof>: ...`` (the documented
  start-up error, docs/persistence.md), never a traceback;
- kv-aof-check on the AOF exits 0 (clean) or 1 (damaged, with a report naming
  the file), never 2 (that is for usage and I/O errors) and never a traceback.

The in-process start-up harness (fuzz/fuzz_files.py) covers far more inputs; this
is the same promise through real processes, a few dozen examples per run.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_helpers import PASSWORD, READY, START_TIMEOUT_S, start_server, stop_process
from kv_client import Client
from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS
from kv_protocol.records import _files

KV_AOF_CHECK: Final = Path(sys.executable).with_name("kv-aof-check")
# A server start each: 20 in CI (about 5 s); `nox -s slow` (HYPOTHESIS_PROFILE=long) runs 200.
EXAMPLES: Final = 200 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 20
FILES: Final = ("kv.db", "kv.aof")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A snapshot of typed keys and an AOF of later writes, as a SIGKILLed server leaves them."""
    data = tmp_path_factory.mktemp("template") / "data"
    server = start_server(data)
    with server.client() as kv:
        kv.set("s", "text\nwith newline")
        kv.set(b"b\x00", b"\x00\xff")
        kv.set("big", 2**70)
        kv.rpush("l", 1, "two", 3.5, None, [1, {"x": True}])
        kv.hset("h", {"f": 1, b"g": b"2"})
        kv.set("ttl", 1, ex=1000)
        kv.save()
        kv.incrby("n", 5)
        kv.rpush("l", "after the save")
        kv.hset("h", {"later": float("inf")})
        kv.set("px", "v", px=500_000)
        kv.delete("s")
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    server.stop()
    files = {name: (data / name).read_bytes() for name in FILES}
    assert files["kv.db"] and files["kv.aof"].count(b"\n") >= 5, files
    return files


@st.composite
def damage(draw: st.DrawFn, content: bytes, aof: bool) -> bytes:
    """One to three mutations of a file's bytes."""
    data = bytearray(content)
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        lines = bytes(data).split(b"\n")
        kinds = ["flip", "truncate", "insert", "duplicate_line", "drop_line", "swap_lines"]
        kind = draw(st.sampled_from([*kinds, "rechecksum"] if aof else kinds))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16) | st.sampled_from([b"\n", b"\0" * 64]))
        else:
            one = draw(st.integers(0, len(lines) - 1))
            other = draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate_line":
                lines.insert(one, lines[one])
            elif kind == "drop_line":
                del lines[one]
            elif kind == "swap_lines":
                lines[one], lines[other] = lines[other], lines[one]
            else:
                lines[one] = _rechecksummed(draw, lines[one])
            data = bytearray(b"\n".join(lines))
    return bytes(data)


def _rechecksummed(draw: st.DrawFn, line: bytes) -> bytes:
    """An AOF record whose command bytes changed but whose CRC was recomputed to match."""
    fields = line.split(b" ", 2)
    if len(fields) != 3 or not fields[2]:
        return line
    stamp, _, command = fields
    at = draw(st.integers(0, len(command) - 1))
    replacement = draw(st.sampled_from([b"0", b"-1", b"99999999999", b'"x"', b"[]", b"{}", b"null",
                                        b'"FLUSHALL"', b'"LPUSH"', b'"$"', b'{"$bytes":"!"}', b"1e999"]))
    command = command[:at] + replacement + command[at + draw(st.integers(0, 6)):]
    crc = _files.crc32c(command, _files.crc32c(stamp + b" "))
    return b"%s %08x %s" % (stamp, crc, command)


def _start(data: Path) -> tuple[subprocess.Popen[bytes], str | None]:
    """Start kv-server on ``data``; its ready line, or None if it exited first."""
    command = [sys.executable, "-m", "kv_server", "--port", "0", "--dir", str(data), "--pass", PASSWORD,
               "--auth-iterations", str(MIN_PBKDF2_ITERATIONS)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(proc.stdout.fileno(), 4096) if readable else b""
        if not chunk:
            return proc, None
        line += chunk
    return proc, line.decode()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Kill a server a failed assertion left running, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _served(proc: subprocess.Popen[bytes], ready: str) -> dict[object, object]:
    """A server that started answers and stops cleanly; what INFO keyspace said."""
    match = READY.search(ready)
    assert match, ready
    tcp = next(address for address in match["addresses"].split(", ") if address.startswith("tcp "))
    port = int(tcp.rsplit(":", 1)[1])
    with Client("127.0.0.1", port, password=PASSWORD, timeout=30) as kv:
        assert kv.ping() == "PONG"
        found: dict[object, object] = {}
        for key in kv.keys("*"):
            kind = kv.type(key)
            found[key] = kv.get(key) if kind == "string" else kind
        kv.set("after-start", 1)
    assert stop_process(proc, "kv-server", signal.SIGTERM, 15) == 0
    assert proc.stderr is not None
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr, stderr
    return found


def test_the_undamaged_template_starts(template: dict[str, bytes], tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_bytes(template[name])
    proc, ready = _start(tmp_path)
    try:
        assert ready is not None, proc.communicate(timeout=30)
        found = _served(proc, ready)
    finally:
        _reap(proc)
    assert found == {b"b\x00": b"\x00\xff", "big": 2**70, "l": "list", "h": "hash", "ttl": 1, "n": 5,
                     "px": "v"}


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


@settings(max_examples=EXAMPLES, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.data())
def test_mutated_files_start_or_are_refused_in_one_line(
    template: dict[str, bytes], scratch: Path, data: st.DataObject
) -> None:
    which = data.draw(st.sampled_from([("kv.db",), ("kv.aof",), FILES]), label="damaged")
    directory = scratch / f"data-{time.monotonic_ns()}"
    directory.mkdir()
    for name in FILES:
        content = template[name]
        if name in which:
            content = data.draw(damage(content, aof=name == "kv.aof"), label=name)
        (directory / name).write_bytes(content)
    check = subprocess.Popen([str(KV_AOF_CHECK), str(directory / "kv.aof")], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    proc, ready = _start(directory)
    try:
        if ready is not None:
            assert "ready on" in ready, ready
            _served(proc, ready)
        else:
            proc.wait(START_TIMEOUT_S)
            assert proc.stderr is not None
            stderr = proc.stderr.read().decode()
            lines = stderr.splitlines()
            assert proc.returncode == 1, (proc.returncode, stderr)
            assert "Traceback" not in stderr and len(lines) == 1, stderr
            assert lines[0].startswith(("kv-server: " + str(directory / "kv.db") + ":",
                                        "kv-server: " + str(directory / "kv.aof") + ":")), stderr
    finally:
        _reap(proc)
    out, err = check.communicate(timeout=60)
    assert check.returncode in (0, 1), (check.returncode, out, err)
    assert "Traceback" not in err, err
    if check.returncode == 1:  # the report names the file ("first bad record: ..." or why not)
        assert str(directory / "kv.aof") in out, out
