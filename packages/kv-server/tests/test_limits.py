"""Limits that bound what one client can make the server hold (``--max-arguments``,
``--client-output-limit``, ``--timeout``) and their place in INFO."""

from __future__ import annotations

from typing import Any

import pytest

from kv_protocol.errors import TooBigError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import decode_message
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import decode_reply, make_config, new_session, run_to_end


def run(state: ServerState, session: Session, *argv: object) -> Any:
    return decode_reply(state.dispatcher.execute_batch(session, [list(argv)]))


def test_commands_longer_than_max_arguments_are_refused_whatever_their_kind() -> None:
    state = ServerState(make_config(max_arguments=16))
    session = new_session(state)
    assert run(state, session, "DEL", *[f"k{i}" for i in range(15)]) == 0
    for argv in (["DEL", *range(16)], ["MSET", *["k", 1] * 8], ["RPUSH", "q", *range(20)]):
        with pytest.raises(TooBigError, match="exceeds the limit of 16"):
            run(state, session, *argv)
    assert run(state, session, "SET", "k", "v") == "OK"  # fixed arity: no limit to reach


def test_a_batch_past_the_output_limit_leaves_the_rest_for_after_sending() -> None:
    state = ServerState(make_config(client_output_limit=2048))
    session = new_session(state)
    run(state, session, "SET", "big", b"x" * 1000)
    batch: list[object] = [["GET", "big"]] * 10 + [["INCR", "n"]]
    first = FrameDecoder().feed(state.dispatcher.execute_batch(session, batch))
    assert len(first) == 3 and len(session.pending) == 8  # 3 replies pass 2048 bytes
    assert "n" not in state.keyspace.data  # the rest has not run yet
    session.pending, session.commands = [], 0
    everything = FrameDecoder().feed(run_to_end(state, session, batch))
    assert [decode_message(f)[1] for f in everything] == [b"x" * 1000] * 10 + [1]
    assert session.commands == 11  # each counted once, when it ran


def test_idle_connections_are_closed_but_not_subscribers_or_blocked_clients() -> None:
    state = ServerState(make_config(idle_timeout_s=5))
    idle, busy, subscriber, blocked = (new_session(state) for _ in range(4))
    run(state, subscriber, "SUBSCRIBE", "ch")
    state.dispatcher.execute_batch(blocked, [["BLPOP", "q", 0]])
    for session in (idle, busy, subscriber, blocked):
        session.idle = True
        session.last_active -= 10
    busy.idle = False  # in the middle of a batch
    assert state.close_idle(busy.last_active + 10) == 1
    assert idle.closing == "idle for more than 5 s"
    assert (busy.closing, subscriber.closing, blocked.closing) == (None, None, None)
    assert state.stats.idle_disconnects == 1


def test_info_clients_shows_every_limit(state: ServerState, session: Session) -> None:
    info = run(state, session, "INFO", "clients", "stats")
    assert {"maxclients", "idle_timeout_s", "max_frame_size", "max_nesting", "max_arguments",
            "client_output_limit", "pubsub_buffer_limit"} <= set(info["clients"])
    assert {"rejected_connections", "total_idle_disconnects",
            "total_output_buffer_disconnects"} <= set(info["stats"])
