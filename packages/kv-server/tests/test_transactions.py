"""MULTI/EXEC/WATCH through the real dispatcher, without sockets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_strategies import calls
from kv_protocol.commands import COMMANDS, Flag
from kv_protocol.errors import ExecAbortError, MisconfError, NoPermError, ServerError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import decode_message
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import FakeClock, decode_reply, make_config, new_session


def run(state: ServerState, session: Session, *argv: object) -> Any:
    return decode_reply(state.dispatcher.execute_batch(session, [list(argv)]))


def envelopes(result: list[list[object]]) -> list[object]:
    """EXEC's envelopes as values, errors as exception instances."""
    return [decode_message(item)[1] for item in result]


def test_queued_commands_run_at_exec_and_answer_in_envelopes(
        state: ServerState, session: Session) -> None:
    assert run(state, session, "MULTI") == "OK"
    assert run(state, session, "SET", "k", "text") == "QUEUED"
    assert run(state, session, "INCR", "k") == "QUEUED"  # fails at run time only
    assert run(state, session, "GET", "k") == "QUEUED"
    assert state.keyspace.peek("k") is not None and len(state.keyspace) == 0
    ok, failed, got = envelopes(run(state, session, "EXEC"))
    assert (ok, got) == ("OK", "text") and isinstance(failed, ServerError)
    assert session.multi is None and not session.restricted


def test_a_refusal_while_queueing_aborts_exec(state: ServerState, session: Session) -> None:
    run(state, session, "MULTI")
    for bad in (["SET", "k"], ["NOSUCH"], ["SUBSCRIBE", "ch"], ["GET", ["not", "a", "key"]],
                ["SAVE"], ["BGSAVE"], ["CONVERT"]):
        with pytest.raises(ServerError):
            run(state, session, *bad)
    run(state, session, "SET", "k", 1)
    with pytest.raises(ExecAbortError):
        run(state, session, "EXEC")
    assert len(state.keyspace) == 0 and session.multi is None


def test_control_errors_leave_the_transaction_as_it_was(state: ServerState, session: Session) -> None:
    with pytest.raises(ServerError, match="EXEC without MULTI"):
        run(state, session, "EXEC")
    with pytest.raises(ServerError, match="DISCARD without MULTI"):
        run(state, session, "DISCARD")
    run(state, session, "MULTI")
    with pytest.raises(ServerError, match="nested"):
        run(state, session, "MULTI")
    with pytest.raises(ServerError, match="WATCH inside MULTI"):
        run(state, session, "WATCH", "k")
    run(state, session, "SET", "k", 1)
    assert envelopes(run(state, session, "EXEC")) == ["OK"]


def test_discard_drops_the_queue_and_the_watches(state: ServerState, session: Session) -> None:
    run(state, session, "WATCH", "k")
    run(state, session, "MULTI")
    run(state, session, "SET", "k", 1)
    assert run(state, session, "DISCARD") == "OK"
    assert len(state.keyspace) == 0 and not state.keyspace.watchers and session.watch is None


@pytest.mark.parametrize("change", [
    ["SET", "k", 2], ["DEL", "k"], ["INCR", "k"], ["EXPIRE", "k", 100], ["PERSIST", "k"],
    ["RENAME", "k", "other"], ["FLUSHALL"],
])
def test_any_change_to_a_watched_key_aborts_exec(
        state: ServerState, session: Session, change: list[object]) -> None:
    other = new_session(state)
    run(state, other, "SET", "k", 1, "EX", 50)
    run(state, session, "WATCH", "k")
    run(state, other, *change)
    run(state, session, "MULTI")
    run(state, session, "SET", "mine", 1)
    assert run(state, session, "EXEC") is None
    assert state.keyspace.peek("mine") is not None and "mine" not in state.keyspace.data
    assert not state.keyspace.watchers


def test_a_watched_key_that_expires_unseen_aborts_exec() -> None:
    state = ServerState(make_config())
    clock = FakeClock()
    state.keyspace.clock = clock
    session = new_session(state)
    run(state, session, "SET", "k", 1, "PX", 100)
    run(state, session, "WATCH", "k")
    clock.advance(200)  # no one reads k: it is still in the dict
    run(state, session, "MULTI")
    run(state, session, "PING")
    assert run(state, session, "EXEC") is None


def test_own_writes_and_unchanged_watches(state: ServerState, session: Session) -> None:
    run(state, session, "WATCH", "k", "j")
    run(state, session, "GET", "k")  # reading is not changing
    run(state, session, "MULTI")
    run(state, session, "INCR", "k")
    assert envelopes(run(state, session, "EXEC")) == [1]
    run(state, session, "WATCH", "k")
    run(state, session, "INCR", "k")  # this client's own write counts too, as in Redis
    run(state, session, "MULTI")
    run(state, session, "INCR", "k")
    assert run(state, session, "EXEC") is None
    run(state, session, "WATCH", "k")
    run(state, session, "INCR", "k")
    run(state, session, "UNWATCH")
    run(state, session, "MULTI")
    run(state, session, "INCR", "k")
    assert envelopes(run(state, session, "EXEC")) == [4]


def test_read_only_sessions_have_writes_refused_while_queueing(state: ServerState) -> None:
    reader = new_session(state)
    reader.readonly = True
    reader.update()
    run(state, reader, "MULTI")
    run(state, reader, "GET", "k")
    with pytest.raises(NoPermError):
        run(state, reader, "SET", "k", 1)
    with pytest.raises(ExecAbortError):
        run(state, reader, "EXEC")
    assert reader.restricted  # still read-only after the transaction


def test_blocking_commands_answer_at_once_inside_a_transaction(
        state: ServerState, session: Session) -> None:
    run(state, session, "MULTI")
    run(state, session, "BLPOP", "q", 0)
    run(state, session, "RPUSH", "q", "a")
    run(state, session, "BRPOPLPUSH", "q", "done", 0)
    assert envelopes(run(state, session, "EXEC")) == [None, 1, "a"]
    assert session.blocked is None


def test_a_transaction_with_writes_is_refused_while_the_aof_is_broken(
        state: ServerState, session: Session, tmp_path: Any) -> None:
    from kv_server._aof import AppendOnlyFile
    from kv_server._config import FsyncPolicy

    aof = AppendOnlyFile(tmp_path, FsyncPolicy.NO, 0)
    state.dispatcher.aof = aof
    aof.error = "disk full"
    run(state, session, "MULTI")
    run(state, session, "GET", "k")
    assert envelopes(run(state, session, "EXEC")) == [None]  # reads still work
    run(state, session, "MULTI")
    run(state, session, "SET", "k", 1)
    with pytest.raises(MisconfError):
        run(state, session, "EXEC")
    assert len(state.keyspace) == 0
    aof.close()


QUEUEABLE = [spec for spec in COMMANDS
             if not spec.flags & (Flag.NOT_QUEUED | Flag.NO_MULTI | Flag.BLOCKING)
             and spec.name not in ("CLIENT KILL", "UNWATCH", "RANDOMKEY", "INFO", "CLIENT LIST",
                                   "SAVE", "BGSAVE", "CONVERT", "LASTSAVE")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.sampled_from(QUEUEABLE).flatmap(calls), min_size=1, max_size=12))
def test_exec_answers_what_the_commands_answer_one_by_one(body: list[list[Any]]) -> None:
    """A differential test: the same commands on a twin server, outside a transaction."""
    inside, outside = ServerState(make_config()), ServerState(make_config())
    for state in (inside, outside):
        state.keyspace.clock = FakeClock()
    a, b = new_session(inside), new_session(outside)
    a.id = b.id  # CLIENT ID answers the same on both
    inside.dispatcher.execute_batch(a, [["MULTI"]])
    queued = FrameDecoder().feed(inside.dispatcher.execute_batch(a, body))
    [exec_reply] = FrameDecoder().feed(inside.dispatcher.execute_batch(a, [["EXEC"]]))
    one_by_one = FrameDecoder().feed(outside.dispatcher.execute_batch(b, body))
    if all(decode_message(item) == (0, "QUEUED") for item in queued):
        assert repr(exec_reply) == repr([0, one_by_one])  # repr: nan equals nan
    else:  # a queue-time refusal: nothing ran
        assert isinstance(decode_message(exec_reply)[1], ExecAbortError)
        assert len(inside.keyspace) == 0
    assert not inside.keyspace.watchers


def test_a_transaction_too_long_for_one_record_is_logged_command_by_command(
        state: ServerState, session: Session, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from kv_protocol.records import aof as records
    from kv_server._aof import AppendOnlyFile
    from kv_server._config import FsyncPolicy

    aof = AppendOnlyFile(tmp_path, FsyncPolicy.NO, 0)
    state.dispatcher.aof = aof
    monkeypatch.setattr(records, "MAX_LINE_BYTES", 200)
    run(state, session, "MULTI")
    for key in ("a", "b", "c"):
        run(state, session, "SET", key, "v" * 60)
    assert envelopes(run(state, session, "EXEC")) == ["OK", "OK", "OK"]
    assert aof.error is None and len(aof.pending) == 3  # not one record: three, and no MISCONF
    aof.close()
