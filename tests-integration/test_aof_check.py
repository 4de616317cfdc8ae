"""kv-aof-check on a real server's AOF: the commands start-up advises work, and --fix lets it start.

The console script is run as a process, as an operator would run it from the server's
error message; the server is killed with SIGKILL so its AOF keeps the records (a clean
shutdown would save a snapshot and start an empty AOF).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from integration_helpers import PASSWORD, ServerProcess, start_server

KV_AOF_CHECK = Path(sys.executable).with_name("kv-aof-check")
KEYS = [f"k{i}" for i in range(6)]


def _kill(server: ServerProcess) -> None:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    server.stop()


def _aof_of_a_killed_server(data: Path) -> bytes:
    server = start_server(data)
    with server.client() as kv:
        for i, key in enumerate(KEYS):
            kv.set(key, i)
    _kill(server)
    return (data / "kv.aof").read_bytes()


def _start_fails(data: Path) -> str:
    command = [sys.executable, "-m", "kv_server", "--port", "0", "--dir", str(data), "--pass", PASSWORD]
    done = subprocess.run(command, capture_output=True, timeout=60)
    assert done.returncode == 1, done.stderr.decode()
    return done.stderr.decode()


def _advised(message: str) -> list[list[str]]:
    """The kv-aof-check commands in a start-up error, as argv with our script's path."""
    found = [shlex.split(command) for command in re.findall(r"`(kv-aof-check [^`]*)`", message)]
    assert found, message
    return [[str(KV_AOF_CHECK), *command[1:]] for command in found]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_a_torn_tail_is_fixed_and_the_server_starts_with_every_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    aof = _aof_of_a_killed_server(data)
    last = aof.rindex(b"\n", 0, len(aof) - 1) + 1
    (data / "kv.aof").write_bytes(aof[:-3])  # a crash in the middle of the last write
    message = _start_fails(data)
    assert "the last record is incomplete" in message
    [fix] = _advised(message)  # a torn tail: start-up only advises the fix
    assert fix[1:] == ["--fix", str(data / "kv.aof")]
    check = [str(KV_AOF_CHECK), str(data / "kv.aof")]

    done = _run(check)
    assert done.returncode == 1, done.stderr
    assert f"first bad record: line {len(KEYS) + 1}, byte offset {last}: torn last record" in done.stdout
    assert "never acknowledged" in done.stdout
    refused = _run(fix)  # no terminal to ask on: it wants --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = _run([*fix, "--yes"])
    assert done.returncode == 0, done.stderr
    assert (data / "kv.aof").read_bytes() == aof[:last]
    assert (data / "kv.aof.bak").read_bytes() == aof[:-3]
    assert _run(check).returncode == 0

    server = start_server(data)
    with server.client() as kv:
        assert kv.mget(*KEYS) == [*range(len(KEYS) - 1), None]
    server.stop()


def test_a_flipped_bit_is_found_and_the_server_starts_with_the_records_before_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    aof = bytearray(_aof_of_a_killed_server(data))
    starts = [0, *(i + 1 for i, byte in enumerate(aof) if byte == ord("\n"))][:-1]
    bad_line = 4  # the header is line 1: records k0, k1 stay
    aof[starts[bad_line - 1] + 20] ^= 0x10
    (data / "kv.aof").write_bytes(bytes(aof))
    check, fix = _advised(_start_fails(data))
    assert check[1:] == [str(data / "kv.aof")] and fix[1:] == ["--fix", str(data / "kv.aof")]

    done = _run(check)
    assert done.returncode == 1, done.stderr
    offset = starts[bad_line - 1]
    assert f"first bad record: line {bad_line}, byte offset {offset}:" in done.stdout
    assert f"--fix would keep 2 records (bytes 0..{offset})" in done.stdout
    done = _run([*fix, "--yes"])
    assert done.returncode == 0, done.stderr
    assert (data / "kv.aof").read_bytes() == bytes(aof[:offset])

    server = start_server(data)
    with server.client() as kv:
        assert kv.mget(*KEYS) == [0, 1, None, None, None, None]
    server.stop()


def test_help_and_a_missing_file(tmp_path: Path) -> None:
    done = _run([str(KV_AOF_CHECK), "--help"])
    assert done.returncode == 0 and "--fix" in done.stdout and "exit status" in done.stdout
    done = _run([str(KV_AOF_CHECK), str(tmp_path / "kv.aof")])
    assert done.returncode == 2 and "No such file" in done.stderr and done.stdout == ""
