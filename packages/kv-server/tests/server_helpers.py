"""Helpers for server tests (on the pytest pythonpath; conftest builds fixtures on them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from kv_protocol.connection import ClientConnection, State
from kv_protocol.errors import ServerError
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS
from kv_protocol.messages import ERROR, REPLY, decode_message, encode_reply
from kv_server._config import ServerConfig
from kv_server._session import Session
from kv_server._state import ServerState
from protocol_helpers import PASSWORD

Call = Callable[..., Any]


def make_config(**changes: Any) -> ServerConfig:
    options: dict[str, Any] = {"password": PASSWORD, "auth_iterations": MIN_PBKDF2_ITERATIONS,
                               "port": 0}
    options.update(changes)
    return ServerConfig(**options)


def new_session(state: ServerState) -> Session:
    session = Session(state, state.sessions.next_id(), transport="test", addr="test:1", laddr="test:0")
    state.sessions.add(session)
    return session


def run_to_end(state: ServerState, session: Session, items: list[object]) -> bytes:
    """Every reply of a batch, as the connection would send them, where each blocking
    command that blocks times out at once (a null reply) and the rest then run."""
    out = state.dispatcher.execute_batch(session, items)
    while session.pending or session.blocked is not None:
        if (waiter := session.blocked) is not None:
            state.blocking.release(waiter)
            session.blocked = None
            out += encode_reply(None)
        rest, session.pending = session.pending, []
        out += state.dispatcher.execute_batch(session, rest)
    return out


def decode_reply(frame: bytes) -> Any:
    """The value of a reply frame; an error reply raises its exception."""
    [item] = FrameDecoder().feed(frame)
    kind, payload = decode_message(item)
    if kind == ERROR:
        assert isinstance(payload, ServerError)
        raise payload
    assert kind == REPLY
    return payload


class Peer:
    """The client side of one connection."""

    def __init__(self, stream: trio.abc.Stream, password: str = PASSWORD) -> None:
        self.stream = stream
        self.conn = ClientConnection(password, name="peer")
        self.decoder = FrameDecoder()

    async def handshake(self) -> None:
        await self.stream.send_all(self.conn.data_to_send())
        while self.conn.state is State.HANDSHAKE:
            self.conn.receive_data(await self.stream.receive_some())
            if out := self.conn.data_to_send():
                await self.stream.send_all(out)

    async def send(self, *commands: list[object]) -> None:
        await self.stream.send_all(b"".join(encode_frame(c) for c in commands))

    async def messages(self, count: int) -> list[tuple[int, object]]:
        """The next ``count`` frames, decoded; fewer if the server closes first."""
        found: list[tuple[int, object]] = []
        while len(found) < count:
            data = await self.stream.receive_some()
            if not data:
                break
            found += [decode_message(item) for item in self.decoder.feed(data)]
        return found

    async def call(self, *argv: object) -> object:
        await self.send(list(argv))
        [(kind, payload)] = await self.messages(1)
        assert kind == REPLY, payload
        return payload

    async def closed(self) -> bool:
        return await self.stream.receive_some() == b""


class FakeClock:
    """A settable Unix-milliseconds clock for the keyspace."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms
