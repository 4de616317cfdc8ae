"""Read-only sessions: what the dispatcher lets them run, refuses, and counts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from command_strategies import calls
from kv_protocol.commands import COMMANDS, CommandSpec, Flag
from kv_protocol.errors import NoPermError, ServerError
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import decode_reply, new_session

WRITE_OR_ADMIN = Flag.WRITE | Flag.ADMIN
ALLOWED = [spec for spec in COMMANDS if not spec.flags & WRITE_OR_ADMIN]
REFUSED = [spec for spec in COMMANDS if spec.flags & WRITE_OR_ADMIN]


@pytest.fixture
def reader(state: ServerState) -> Session:
    reader = new_session(state)
    reader.readonly = True
    reader.update()
    return reader


def run(state: ServerState, session: Session, *argv: object) -> Any:
    """One command through the batch path, which is where sessions choose their dispatch."""
    return decode_reply(state.dispatcher.execute_batch(session, [list(argv)]))


def test_the_allowed_commands_are_the_reads_and_the_harmless_connection_commands() -> None:
    allowed = {spec.name for spec in ALLOWED}
    assert {"GET", "MGET", "SCAN", "HGETALL", "LRANGE", "TTL", "LASTSAVE"} <= allowed
    assert {"PING", "ECHO", "INFO", "CLIENT ID", "CLIENT GETNAME", "CLIENT SETNAME"} <= allowed
    assert allowed.isdisjoint({"SET", "DEL", "FLUSHALL", "CLIENT LIST", "CLIENT KILL", "SAVE",
                               "BGSAVE", "CONVERT", "EXPIRE", "LPOP"})
    # Transactions and pub/sub touch no data by themselves: a queued write is refused
    # while queueing, and channels are not stored.
    assert all(Flag.READONLY in spec.flags
               or spec.group in ("connection", "server", "transactions", "pubsub")
               for spec in ALLOWED)


def test_reads_work_and_writes_answer_noperm(
    state: ServerState, session: Session, reader: Session
) -> None:
    run(state, session, "SET", "k", 12345)
    assert run(state, reader, "GET", "k") == 12345
    assert run(state, reader, "PING") == "PONG"
    assert run(state, reader, "CLIENT", "SETNAME", "reader") == "OK"
    with pytest.raises(NoPermError, match="this connection is read-only: SET is a write command"):
        run(state, reader, "SET", "k", 1)
    with pytest.raises(NoPermError, match="CLIENT LIST is an admin command"):
        run(state, reader, "client", "list")
    assert run(state, reader, "GET", "k") == 12345


def test_a_refused_command_is_counted_as_rejected_with_noperm(
    state: ServerState, reader: Session
) -> None:
    with pytest.raises(NoPermError):
        run(state, reader, "DEL", "k")
    info = run(state, reader, "INFO", "all")
    assert info["commandstats"]["del"] == {"calls": 0, "failed_calls": 0, "rejected_calls": 1}
    assert info["errorstats"] == {"NOPERM": 1}


def test_arity_is_checked_before_permission(state: ServerState, reader: Session) -> None:
    with pytest.raises(ServerError, match="wrong number of arguments for 'set'") as caught:
        run(state, reader, "SET", "k")
    assert not isinstance(caught.value, NoPermError)


def test_pipelined_batches_refuse_each_write(state: ServerState, reader: Session) -> None:
    frames = state.dispatcher.execute_batch(reader, [["PING"], ["SET", "a", 1], ["EXISTS", "a"]])
    assert frames.count(b"NOPERM") == 1 and len(reader.state.keyspace) == 0


def test_client_list_and_info_show_read_only_sessions(
    state: ServerState, session: Session, reader: Session
) -> None:
    users = {c["id"]: c["user"] for c in run(state, session, "CLIENT", "LIST")}
    assert users == {session.id: "default", reader.id: "readonly"}
    assert run(state, reader, "INFO", "clients")["clients"]["readonly_clients"] == 1


@pytest.mark.parametrize("spec", REFUSED, ids=lambda spec: spec.name)
@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_write_or_admin_call_is_refused_and_changes_nothing(
    state: ServerState, session: Session, reader: Session, spec: CommandSpec, data: st.DataObject
) -> None:
    for key in ("a", "b", b"a"):
        run(state, session, "RPUSH", key, 1, 2)
    entry = state.dispatcher.entries[spec.name]
    dirty, ran, rejected = state.keyspace.dirty, entry.calls + entry.failed, entry.rejected
    argv = data.draw(calls(spec))
    # NOPERM, or a generic check's error (an integer beyond 64 bits): either way before running.
    with pytest.raises(ServerError):
        run(state, reader, *argv)
    assert (entry.calls + entry.failed, entry.rejected) == (ran, rejected + 1)
    assert state.keyspace.dirty == dirty and reader.closing is None


@pytest.mark.parametrize("spec", ALLOWED, ids=lambda spec: spec.name)
@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_allowed_call_runs_as_for_a_normal_session(
    state: ServerState, session: Session, reader: Session, spec: CommandSpec, data: st.DataObject
) -> None:
    argv = data.draw(calls(spec))
    try:
        run(state, reader, *argv)
    except NoPermError:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"{argv!r} was refused on a read-only session")
    except ServerError:
        pass
