"""--maxmemory and its policies, on a memory measure that counts keys (deterministic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kv_protocol.errors import OomError
from kv_server._aof import AppendOnlyFile
from kv_server._config import FsyncPolicy, MaxmemoryPolicy
from kv_server._keyspace import LruKeyspace
from kv_server._memory import used_memory
from kv_server._recovery import recover
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import decode_reply, make_config, new_session

KEY_BYTES = 1000
"""What each key costs in the measure these tests use instead of the allocator's."""


def server(policy: MaxmemoryPolicy, keys_allowed: int, **config: Any) -> tuple[ServerState, Session]:
    state = ServerState(make_config(maxmemory=keys_allowed * KEY_BYTES, maxmemory_policy=policy,
                                    **config))
    assert state.maxmemory is not None
    state.maxmemory.measure = lambda: len(state.keyspace.data) * KEY_BYTES
    return state, new_session(state)


def run(state: ServerState, session: Session, *argv: object) -> Any:
    state.clock.now += 1  # a new millisecond: the measure is read again
    return decode_reply(state.dispatcher.execute_batch(session, [list(argv)]))


def test_noeviction_refuses_what_may_grow_and_keeps_reads_and_deletions() -> None:
    state, session = server(MaxmemoryPolicy.NOEVICTION, 3)
    for i in range(4):  # checked before each write: at 3 keys it is at the limit, not over
        run(state, session, "SET", f"k{i}", i)
    for argv in (["SET", "x", 1], ["RPUSH", "q", 1], ["INCR", "k0"], ["HSET", "h", "f", 1]):
        with pytest.raises(OomError, match="maxmemory"):
            run(state, session, *argv)
    assert run(state, session, "GET", "k1") == 1
    assert run(state, session, "EXPIRE", "k1", 100) == 1  # not flagged denyoom
    assert run(state, session, "DEL", "k0", "k1") == 2
    assert run(state, session, "SET", "x", 1) == "OK"
    info = run(state, session, "INFO", "memory")["memory"]
    assert (info["maxmemory_policy"], info["oom_rejections"], info["evicted_keys"]) == (
        "noeviction", 4, 0)


def test_allkeys_lru_evicts_the_least_recently_used_keys(tmp_path: Path) -> None:
    state, session = server(MaxmemoryPolicy.ALLKEYS_LRU, 5, data_dir=tmp_path)
    assert isinstance(state.keyspace, LruKeyspace)
    aof = state.dispatcher.aof = AppendOnlyFile(tmp_path, FsyncPolicy.NO, 0)
    for i in range(5):
        run(state, session, "SET", f"k{i}", i)
    run(state, session, "GET", "k0")
    run(state, session, "GET", "k1")
    run(state, session, "SET", "new1", 1)  # 5 keys: at the limit, not over it
    run(state, session, "SET", "new2", 1)  # 6: over; evicts k2 (k0 and k1 were read since)
    run(state, session, "SET", "new3", 1)  # evicts k3
    assert sorted(state.keyspace.data) == ["k0", "k1", "k4", "new1", "new2", "new3"]
    assert run(state, session, "INFO", "memory")["memory"]["evicted_keys"] == 2
    aof.close()
    assert '["DEL","k2"]' in (tmp_path / "kv.aof").read_text()
    replayed = ServerState(make_config(data_dir=tmp_path))
    recover(replayed, tmp_path, allow_torn=False)
    assert sorted(replayed.keyspace.data) == sorted(state.keyspace.data)


def test_volatile_ttl_evicts_the_nearest_deadline_then_answers_oom() -> None:
    state, session = server(MaxmemoryPolicy.VOLATILE_TTL, 3)
    run(state, session, "SET", "forever", 1)
    run(state, session, "SET", "late", 1, "EX", 3600)
    run(state, session, "SET", "soon", 1, "PX", 5000)
    run(state, session, "SET", "x", 1)  # 3 keys: at the limit, not over it
    run(state, session, "SET", "y", 1)  # 4: over; evicts soon
    assert sorted(state.keyspace.data) == ["forever", "late", "x", "y"]
    run(state, session, "SET", "z", 1)  # evicts late
    with pytest.raises(OomError, match="volatile-ttl"):
        run(state, session, "SET", "w", 1)  # nothing with a deadline is left
    assert sorted(state.keyspace.data) == ["forever", "x", "y", "z"]


def test_a_transaction_that_may_grow_is_refused_whole() -> None:
    state, session = server(MaxmemoryPolicy.NOEVICTION, 1)
    run(state, session, "SET", "a", 1)
    run(state, session, "SET", "b", 1)
    run(state, session, "MULTI")
    run(state, session, "DEL", "a")
    run(state, session, "SET", "c", 1)
    with pytest.raises(OomError):
        run(state, session, "EXEC")
    assert sorted(state.keyspace.data) == ["a", "b"]


def test_without_a_limit_no_command_is_checked(state: ServerState) -> None:
    assert state.maxmemory is None
    assert not any(entry.denyoom for entry in state.dispatcher.entries.values())
    assert type(state.keyspace).__name__ == "Keyspace"


def test_the_estimate_falls_when_data_is_freed() -> None:
    before = used_memory()
    data = {f"key:{i:012d}": f"value:{i}" for i in range(100_000)}
    grown = used_memory()
    del data
    assert grown - before > 10_000_000 and used_memory() - before < (grown - before) / 10
