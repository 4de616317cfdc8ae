"""Blocking list pops through the real dispatcher: who is served, in what order, when."""

from __future__ import annotations

from typing import Any

import pytest

from kv_protocol.errors import ServerError, WrongTypeError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import decode_message
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import decode_reply, new_session


def run(state: ServerState, session: Session, *argv: object) -> Any:
    return decode_reply(state.dispatcher.execute_batch(session, [list(argv)]))


def block(state: ServerState, session: Session, *argv: object) -> None:
    assert state.dispatcher.execute_batch(session, [list(argv)]) == b""
    assert session.blocked is not None


def answer(session: Session) -> Any:
    """The reply a served waiter will send."""
    waiter = session.blocked
    assert waiter is not None and waiter.frame is not None
    session.blocked = None
    return decode_reply(waiter.frame)


def test_an_element_present_is_taken_at_once(state: ServerState, session: Session) -> None:
    run(state, session, "RPUSH", "q", "a", "b")
    assert run(state, session, "BLPOP", "none", "q", 0) == ["q", "a"]
    assert run(state, session, "BRPOP", "q", 0) == ["q", "b"]
    assert "q" not in state.keyspace.data and session.blocked is None


def test_blocked_clients_are_served_oldest_first_one_element_each(state: ServerState) -> None:
    waiters = [new_session(state) for _ in range(4)]
    for waiter in waiters:
        block(state, waiter, "BLPOP", "q", 0)
    pusher = new_session(state)
    assert run(state, pusher, "RPUSH", "q", "e0", "e1", "e2") == 3
    assert [answer(w) for w in waiters[:3]] == [["q", "e0"], ["q", "e1"], ["q", "e2"]]
    assert waiters[3].blocked.frame is None  # type: ignore[union-attr]
    assert run(state, pusher, "LLEN", "q") == 0
    run(state, pusher, "LPUSH", "q", "last")
    assert answer(waiters[3]) == ["q", "last"]
    assert not state.blocking.queues and not state.keyspace.watchers


def test_a_client_on_several_keys_is_served_by_the_first_to_get_data(state: ServerState) -> None:
    waiter, pusher = new_session(state), new_session(state)
    block(state, waiter, "BRPOP", "a", "b", "c", 0.5)
    run(state, pusher, "RPUSH", "c", 1, 2)
    assert answer(waiter) == ["c", 2]
    assert run(state, pusher, "LRANGE", "c", 0, -1) == [1]
    assert not state.blocking.queues


@pytest.mark.parametrize("create", [
    [["MULTI"], ["SET", "x", 1], ["RPUSH", "q", "v"], ["EXEC"]],
    [["RPUSH", "other", "v"], ["RENAME", "other", "q"]],
    [["RPUSH", "other", "v"], ["LMOVE", "other", "q", "LEFT", "LEFT"]],
])
def test_any_way_of_filling_the_key_wakes_the_waiter(
        state: ServerState, create: list[list[object]]) -> None:
    waiter, pusher = new_session(state), new_session(state)
    block(state, waiter, "BLPOP", "q", 0)
    state.dispatcher.execute_batch(pusher, create)  # type: ignore[arg-type]
    assert answer(waiter) == ["q", "v"]


def test_inside_exec_the_waiter_is_served_after_the_whole_transaction(state: ServerState) -> None:
    waiter, pusher = new_session(state), new_session(state)
    block(state, waiter, "BLPOP", "q", 0)
    for argv in (["MULTI"], ["RPUSH", "q", "a"], ["LPOP", "q"], ["RPUSH", "q", "b"]):
        run(state, pusher, *argv)
    frames = FrameDecoder().feed(state.dispatcher.execute_batch(pusher, [["EXEC"]]))
    assert decode_message(frames[0])[1] == [[0, 1], [0, "a"], [0, 1]]
    assert answer(waiter) == ["q", "b"]


def test_blmove_chains_to_the_clients_blocked_on_its_destination(state: ServerState) -> None:
    mover, taker, pusher = new_session(state), new_session(state), new_session(state)
    block(state, mover, "BLMOVE", "in", "out", "LEFT", "RIGHT", 0)
    block(state, taker, "BLPOPRPUSH", "out", "done", 0)
    run(state, pusher, "RPUSH", "in", "job")
    assert answer(mover) == "job" and answer(taker) == "job"
    assert run(state, pusher, "LRANGE", "done", 0, -1) == ["job"]
    assert run(state, pusher, "EXISTS", "in", "out") == 0


def test_a_key_of_another_type(state: ServerState, session: Session) -> None:
    run(state, session, "SET", "s", "text")
    with pytest.raises(WrongTypeError):
        run(state, session, "BLPOP", "s", 0)
    waiter = new_session(state)
    block(state, waiter, "BLPOP", "q", 0)
    run(state, session, "SET", "q", "now a string")  # not a list: the waiter keeps waiting
    assert waiter.blocked.frame is None  # type: ignore[union-attr]
    run(state, session, "DEL", "q")
    run(state, session, "RPUSH", "q", 1)
    assert answer(waiter) == ["q", 1]


@pytest.mark.parametrize("timeout", [-1, -0.5, float("inf"), float("nan"), 10**400])
def test_bad_timeouts_are_refused(state: ServerState, session: Session, timeout: float) -> None:
    with pytest.raises(ServerError, match="timeout"):
        run(state, session, "BLPOP", "q", timeout)
    assert session.blocked is None


def test_commands_pipelined_after_a_block_wait_for_it(state: ServerState, session: Session) -> None:
    out = state.dispatcher.execute_batch(session, [["PING"], ["BLPOP", "q", 1], ["SET", "k", 1]])
    assert [decode_message(f) for f in FrameDecoder().feed(out)] == [(0, "PONG")]
    assert session.pending == [["SET", "k", 1]] and "k" not in state.keyspace.data


def test_a_connection_that_ends_while_blocked_leaves_no_trace(state: ServerState) -> None:
    gone, next_in_line, pusher = new_session(state), new_session(state), new_session(state)
    block(state, gone, "BLPOP", "q", "r", 0)
    block(state, next_in_line, "BLPOP", "q", 0)
    state.release(gone)
    run(state, pusher, "RPUSH", "q", "x")
    assert answer(next_in_line) == ["q", "x"]
    run(state, pusher, "RPUSH", "r", "kept")
    assert run(state, pusher, "LRANGE", "r", 0, -1) == ["kept"]
    assert not state.blocking.queues and not state.keyspace.watchers


def test_info_and_client_list_show_blocked_clients(state: ServerState, session: Session) -> None:
    block(state, session, "BLPOP", "a", "b", 0)
    admin = new_session(state)
    info = run(state, admin, "INFO", "clients")["clients"]
    assert (info["blocked_clients"], info["total_blocking_keys"]) == (1, 2)
    [me] = [c for c in run(state, admin, "CLIENT", "LIST") if c["id"] == session.id]
    assert me["blocked"] is True


@pytest.mark.parametrize("interrupt", [True, False])
def test_a_connection_asked_to_close_is_never_served(state: ServerState, interrupt: bool) -> None:
    killed, pusher = new_session(state), new_session(state)
    block(state, killed, "BLPOP", "q", 0)
    killed.close_soon("killed by client 9", interrupt=interrupt)
    run(state, pusher, "RPUSH", "q", "job")
    assert run(state, pusher, "LRANGE", "q", 0, -1) == ["job"]
    assert killed.blocked.frame is None  # type: ignore[union-attr]
    assert not state.blocking.queues
