"""Crash safety: SIGKILL a server at random moments while clients write, then restart.

Writers record a write only once its reply arrived (acknowledged). After each kill
the server restarts on the same directory and every acknowledged write must be
there, for every fsync policy: the record reaches the kernel before the reply
leaves, so a killed process loses nothing the kernel has (the policies differ only
when the machine itself stops, which a test cannot do to its own host). Writers
also run BGSAVE now and then, so kills land during saves and segment changes.

Rounds per policy: KV_CRASH_ROUNDS (default 3; ``nox -s crash`` runs 20).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from integration_helpers import ServerProcess, start_server
from kv_client import Client, KvError

ROUNDS = int(os.environ.get("KV_CRASH_ROUNDS", "3"))
WRITERS = 3
ROUND_LIMIT_S = 5.0


@dataclass
class Acknowledged:
    """What one writer was told is stored."""

    strings: dict[str, int] = field(default_factory=dict)
    pushes: list[tuple[int, bool]] = field(default_factory=list)
    """Every RPUSH sent, in order, and whether its reply arrived."""
    fields: dict[str, int] = field(default_factory=dict)


def write_until_killed(server: ServerProcess, writer: int, round_: int, seen: Acknowledged,
                       stop: threading.Event) -> None:
    rng = random.Random(f"{writer}-{round_}")
    try:
        with server.client(timeout=10) as kv:
            sequence = 0
            while not stop.is_set():
                sequence += 1
                token = round_ * 1_000_000 + sequence
                choice = rng.random()
                if choice < 0.4:
                    kv.set(f"s:{writer}:{token}", token)
                    seen.strings[f"s:{writer}:{token}"] = token
                elif choice < 0.7:
                    seen.pushes.append((token, False))
                    kv.rpush(f"list:{writer}", token)
                    seen.pushes[-1] = (token, True)
                elif choice < 0.995:
                    kv.hset(f"hash:{writer}", {f"f{token}": token})
                    seen.fields[f"f{token}"] = token
                else:
                    with contextlib.suppress(KvError):  # BUSY: one is running
                        kv.bgsave()
    except (KvError, OSError):
        return  # the server was killed


def check(kv: Client, writer: int, seen: Acknowledged) -> None:
    for key, value in seen.strings.items():
        assert kv.get(key) == value, key
    stored = kv.lrange(f"list:{writer}", 0, -1)
    # In order: every acknowledged push, and each push in flight at a kill or not.
    at = 0
    for token, acknowledged in seen.pushes:
        if at < len(stored) and stored[at] == token:
            at += 1
        else:
            assert not acknowledged, f"acknowledged RPUSH {token} is missing"
    assert at == len(stored), f"unexpected items {stored[at:]}"
    fields = kv.hgetall(f"hash:{writer}") if seen.fields else {}
    for name, value in seen.fields.items():
        assert fields[name] == value, name


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_acknowledged_writes_survive_sigkill(tmp_path: Path, policy: str) -> None:
    data = tmp_path / "data"
    seen = [Acknowledged() for _ in range(WRITERS)]
    rng = random.Random(policy)
    for round_ in range(ROUNDS):
        server = start_server(data, "--appendfsync", policy)
        with server.client(timeout=30) as kv:
            for writer in range(WRITERS):
                check(kv, writer, seen[writer])
        stop = threading.Event()
        threads = [threading.Thread(target=write_until_killed,
                                    args=(server, writer, round_, seen[writer], stop))
                   for writer in range(WRITERS)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.05, 0.6))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(ROUND_LIMIT_S)
        stop.set()
        for thread in threads:
            thread.join(ROUND_LIMIT_S)
            assert not thread.is_alive()
        server.stop()
    server = start_server(data, "--appendfsync", policy)
    with server.client(timeout=30) as kv:
        for writer in range(WRITERS):
            check(kv, writer, seen[writer])
        assert sum(len(s.strings) + len(s.pushes) for s in seen) > 0
    assert server.stop() == 0, server.log()
