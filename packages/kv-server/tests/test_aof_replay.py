"""Replaying the AOF rebuilds exactly the keyspace that wrote it.

Random well-typed command sequences run on a fake clock with a real
:class:`AppendOnlyFile` attached; the file is then replayed into a fresh server
state by the start-up code. Both keyspaces must hold the same keys, types, values
and deadlines: a write that changed data but was not logged, a record that does
something else on replay, or a relative time replayed as relative, all fail here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_strategies import any_call
from kv_server._aof import AppendOnlyFile, create_segment
from kv_server._config import FsyncPolicy
from kv_server._keyspace import MISSING, Keyspace, KvList
from kv_server._recovery import recover
from kv_server._snapshots import write_snapshot
from kv_server._state import ServerState
from server_helpers import FakeClock, make_config, new_session, run_to_end

STEPS = st.lists(st.tuples(any_call | st.just(["FLUSHALL"]), st.integers(0, 1500)),
                 min_size=1, max_size=30)


def dump(keyspace: Keyspace) -> dict[object, tuple[str, str, int | None]]:
    """Every live key as (type, repr of its value, deadline); repr makes nan equal to nan."""
    found = {}
    for key in list(keyspace.data):
        value = keyspace.peek(key)
        if value is not MISSING:
            found[key] = (type(value).__name__, repr(value), keyspace.deadline(key))
    return found


def run_logged(directory: Path, steps: list[tuple[list[Any], int]]) -> tuple[ServerState, FakeClock]:
    state = ServerState(make_config(data_dir=directory))
    clock = FakeClock()
    state.keyspace.clock = clock
    aof = AppendOnlyFile(directory, FsyncPolicy.NO, 0)
    state.dispatcher.aof = aof
    session = new_session(state)
    for argv, advance in steps:
        clock.advance(advance)
        run_to_end(state, session, [argv])
    aof.close()
    return state, clock


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_replay_rebuilds_the_keyspace(tmp_path_factory: pytest.TempPathFactory,
                                      steps: list[tuple[list[Any], int]]) -> None:
    directory = tmp_path_factory.mktemp("aof")
    original, clock = run_logged(directory, steps)
    replayed = ServerState(make_config(data_dir=directory))
    found = recover(replayed, directory, allow_torn=False)
    replayed.keyspace.clock = clock
    assert dump(replayed.keyspace) == dump(original.keyspace)
    assert found.position == original.dispatcher.aof.position  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bodies=st.lists(st.lists(any_call, min_size=1, max_size=6), min_size=1, max_size=4))
def test_replayed_transactions_rebuild_the_keyspace(tmp_path_factory: pytest.TempPathFactory,
                                                   bodies: list[list[list[Any]]]) -> None:
    """Each body runs inside MULTI/EXEC: its writes are one record, replayed whole."""
    directory = tmp_path_factory.mktemp("aof")
    steps = [(argv, 0) for body in bodies for argv in (["MULTI"], *body, ["EXEC"])]
    original, clock = run_logged(directory, steps)
    replayed = ServerState(make_config(data_dir=directory))
    recover(replayed, directory, allow_torn=False)
    replayed.keyspace.clock = clock
    assert dump(replayed.keyspace) == dump(original.keyspace)


def test_a_transaction_is_one_record_and_a_torn_one_is_dropped_whole(tmp_path: Path) -> None:
    run_logged(tmp_path, [(["SET", "before", 1], 0), (["MULTI"], 0), (["SET", "a", 1], 0),
                          (["GET", "a"], 0), (["RPUSH", "q", "x", "y"], 0), (["EXEC"], 0)])
    path = tmp_path / "kv.aof"
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3 and lines[2].endswith(b'["MULTI",["SET","a",1],["RPUSH","q","x","y"]]\n')
    path.write_bytes(b"".join(lines[:2]) + lines[2][:-12])  # the crash cut the record short
    replayed = ServerState(make_config(data_dir=tmp_path))
    found = recover(replayed, tmp_path, allow_torn=True)
    assert found.replayed == 1 and dump(replayed.keyspace) == {"before": ("int", "1", None)}


def test_blocking_pops_are_logged_as_their_non_blocking_form(tmp_path: Path) -> None:
    state = ServerState(make_config(data_dir=tmp_path))
    aof = AppendOnlyFile(tmp_path, FsyncPolicy.NO, 0)
    state.dispatcher.aof = aof
    waiter, pusher = new_session(state), new_session(state)
    state.dispatcher.execute_batch(waiter, [["BLMOVE", "jobs", "busy", "LEFT", "RIGHT", 0]])
    assert waiter.blocked is not None
    state.dispatcher.execute_batch(pusher, [["RPUSH", "jobs", "j1", "j2"],
                                            ["BRPOP", "jobs", 0], ["BLPOP", "none", "jobs", 0]])
    aof.close()
    text = (tmp_path / "kv.aof").read_text()
    assert [line.split(" ", 2)[2] for line in text.splitlines()[1:]] == [
        '["RPUSH","jobs","j1","j2"]', '["LMOVE","jobs","busy","LEFT","RIGHT"]',
        '["RPOP","jobs"]']
    assert "BL" not in text and "BR" not in text
    replayed = ServerState(make_config(data_dir=tmp_path))
    recover(replayed, tmp_path, allow_torn=False)
    assert dump(replayed.keyspace) == dump(state.keyspace) == {
        "busy": ("KvList", "KvList(['j1'])", None)}


def test_relative_expiry_is_logged_as_an_absolute_deadline(tmp_path: Path) -> None:
    original, clock = run_logged(tmp_path, [(["SET", "k", 1, "EX", 10], 0),
                                            (["SETEX", "s", 5, "v"], 0),
                                            (["EXPIRE", "k", 20], 0),
                                            (["GETEX", "s", "PX", 700], 0)])
    text = (tmp_path / "kv.aof").read_text()
    deadline = clock.now + 20_000
    assert f'["PEXPIREAT","k",{deadline}]' in text
    assert f'["SET","s","v","PXAT",{clock.now + 5_000}]' in text
    assert f'["PEXPIREAT","s",{clock.now + 700}]' in text
    # Replayed an hour later, the deadlines are the same, not an hour later.
    clock.advance(3_600_000)
    replayed = ServerState(make_config(data_dir=tmp_path))
    recover(replayed, tmp_path, allow_torn=False)
    assert replayed.keyspace.expires == original.keyspace.expires


def test_commands_that_change_nothing_are_not_logged(tmp_path: Path) -> None:
    run_logged(tmp_path, [(["SET", "k", 1], 0), (["SETNX", "k", 2], 0), (["DEL", "nope"], 0),
                          (["GET", "k"], 0), (["LPOP", "nope"], 0)])
    lines = (tmp_path / "kv.aof").read_text().splitlines()
    assert len(lines) == 2 and lines[1].endswith('["SET","k",1]')


def test_a_gap_the_snapshot_covers_is_not_missing_data(tmp_path: Path) -> None:
    """Start-up saved, wrote a new kv.aof, then died before deleting an old segment."""
    original, clock = run_logged(tmp_path, [(["SET", "a", 1], 0), (["RPUSH", "q", 2], 0)])
    aof = (tmp_path / "kv.aof").read_bytes()
    end = original.dispatcher.aof.position  # type: ignore[union-attr]
    first_record_end = aof.index(b"\n", aof.index(b"\n") + 1) + 1
    (tmp_path / "kv.aof.1").write_bytes(aof[:first_record_end])
    write_snapshot(original.keyspace, tmp_path / "kv.db", "plaintext", end)
    os.close(create_segment(tmp_path / "kv.aof", end)[0])
    replayed = ServerState(make_config(data_dir=tmp_path))
    found = recover(replayed, tmp_path, allow_torn=False)
    replayed.keyspace.clock = clock
    assert found.replayed == 0 and found.position == end
    assert dump(replayed.keyspace) == dump(original.keyspace)


def test_a_logged_blocking_pop_replays_without_blocking(tmp_path: Path) -> None:
    """A blocking pop is logged only when a key it looked at expired and it took nothing."""
    run_logged(tmp_path, [(["RPUSH", "q", "old"], 0), (["PEXPIRE", "q", 5], 0),
                          (["BLPOP", "q", 0.5], 50)])
    assert '["BLPOP","q",0.5]' in (tmp_path / "kv.aof").read_text()
    replayed = ServerState(make_config(data_dir=tmp_path))
    recover(replayed, tmp_path, allow_torn=False)
    assert not replayed.blocking.queues
    pusher = new_session(replayed)
    replayed.dispatcher.execute_batch(pusher, [["RPUSH", "q", "precious"]])
    assert replayed.keyspace.peek("q") == KvList(["precious"])


def test_a_malformed_transaction_record_is_refused_with_a_message(tmp_path: Path) -> None:
    from kv_protocol.records.aof import encode_header, encode_record
    from kv_server._recovery import StartupError

    (tmp_path / "kv.aof").write_bytes(encode_header(0) + encode_record(1, ["MULTI", "not-a-command"]))
    with pytest.raises(StartupError, match=r"line 2.*replaying the record failed"):
        recover(ServerState(make_config(data_dir=tmp_path)), tmp_path, allow_torn=False)


def test_a_lowered_max_arguments_does_not_refuse_records_already_logged(tmp_path: Path) -> None:
    original, _ = run_logged(tmp_path, [(["RPUSH", "q", *range(100)], 0)])
    replayed = ServerState(make_config(data_dir=tmp_path, max_arguments=16))
    recover(replayed, tmp_path, allow_torn=False)
    assert dump(replayed.keyspace) == dump(original.keyspace)
