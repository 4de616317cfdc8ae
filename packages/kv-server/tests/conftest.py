"""Fixtures for server tests: a server state, a session, and ``call`` to run commands.

``call`` goes through the real dispatcher and decodes the reply frame, so every
command test also checks arity, argument kinds and reply encoding, without sockets.
"""

from __future__ import annotations

from typing import Any

import pytest

from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import Call, FakeClock, decode_reply, make_config, new_session


@pytest.fixture
def state() -> ServerState:
    return ServerState(make_config())


@pytest.fixture
def session(state: ServerState) -> Session:
    return new_session(state)


@pytest.fixture
def call(state: ServerState, session: Session) -> Call:
    def run(*argv: object) -> Any:
        return decode_reply(state.dispatcher.execute(session, list(argv)))

    return run


@pytest.fixture
def clock(state: ServerState) -> FakeClock:
    fake = FakeClock()
    state.keyspace.clock = fake
    return fake
