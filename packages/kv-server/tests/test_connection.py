"""The real connection handler, driven by kv_protocol's ClientConnection.

Each test runs over both transports: trio memory streams (the stream loop, which TLS
will use) and a socketpair (the low-level socket loop).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from kv_protocol.errors import ServerError
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import ERROR, PUSH, REPLY, Push
from kv_server._connection import SocketTransport, StreamTransport, Transport, serve_connection
from kv_server._state import ServerState
from protocol_helpers import PASSWORD
from server_helpers import Peer, make_config


def _memory(state: ServerState, nursery: trio.Nursery) -> trio.abc.Stream:
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(_serve, state, StreamTransport(server))
    return client


def _socketpair(state: ServerState, nursery: trio.Nursery) -> trio.abc.Stream:
    ours, theirs = socket.socketpair()
    nursery.start_soon(_serve, state, SocketTransport(theirs))
    return trio.SocketStream(trio.socket.from_stdlib_socket(ours))


async def _serve(state: ServerState, transport: Transport) -> None:
    await serve_connection(state, transport, kind="test", addr="peer:1", laddr="server:0")


@pytest.fixture(params=[_memory, _socketpair], ids=["stream", "socket"])
async def open_peer(
    request: pytest.FixtureRequest, nursery: trio.Nursery
) -> AsyncIterator[Callable[..., Peer]]:
    state = ServerState(make_config(handshake_timeout_s=5))
    streams: list[trio.abc.Stream] = []

    def open_peer(password: str = PASSWORD) -> Peer:
        streams.append(request.param(state, nursery))
        return Peer(streams[-1], password)

    open_peer.state = state  # type: ignore[attr-defined]
    yield open_peer
    for stream in streams:
        await stream.aclose()


@asynccontextmanager
async def ready(open_peer: Callable[..., Peer]) -> AsyncIterator[Peer]:
    peer = open_peer()
    await peer.handshake()
    yield peer


async def test_handshake_then_commands(open_peer: Callable[..., Peer]) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    async with ready(open_peer) as peer:
        assert await peer.call("SET", "k", 12345) == "OK"
        assert await peer.call("GET", "k") == 12345
        [session] = list(state.sessions)
        assert (session.name, session.id) == ("peer", peer.conn.session.connection_id)  # type: ignore[union-attr]


async def test_pipelined_commands_all_get_replies_in_order(open_peer: Callable[..., Peer]) -> None:
    async with ready(open_peer) as peer:
        await peer.send(*[["SET", f"k{i}", i] for i in range(500)], *[["GET", f"k{i}"] for i in range(500)])
        replies = await peer.messages(1000)
        assert [p for _, p in replies] == ["OK"] * 500 + list(range(500))


async def test_wrong_password(open_peer: Callable[..., Peer]) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    peer = open_peer("wrong")
    with pytest.raises(ServerError, match="invalid password"):
        await peer.handshake()
    assert await peer.closed()
    assert state.stats.auth_failures == 1 and len(state.sessions) == 0


async def test_command_before_handshake_is_refused(open_peer: Callable[..., Peer]) -> None:
    peer = open_peer()
    await peer.send(["GET", "k"])
    [(kind, error)] = await peer.messages(2)
    assert kind == ERROR and getattr(error, "code", None) == "NOAUTH"
    assert await peer.closed()


async def test_garbage_before_handshake(open_peer: Callable[..., Peer]) -> None:
    peer = open_peer()
    await peer.stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    [(kind, error)] = await peer.messages(2)
    assert kind == ERROR and getattr(error, "code", None) == "PROTO"
    assert "exceeds the limit" in str(error)


async def test_handshake_timeout(open_peer: Callable[..., Peer], autojump_clock: object) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    peer = open_peer()
    [(kind, error)] = await peer.messages(2)
    assert kind == ERROR and "handshake not completed within 5 s" in str(error)
    assert state.stats.handshake_timeouts == 1


async def test_malformed_frame_gets_proto_and_close_others_carry_on(
    open_peer: Callable[..., Peer],
) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    async with ready(open_peer) as bad, ready(open_peer) as good:
        await bad.stream.send_all(b"\x00\x00\x00\x02\xff\xff")
        [(kind, error)] = await bad.messages(2)
        assert kind == ERROR and getattr(error, "code", None) == "PROTO"
        assert await bad.closed()
        assert await good.call("PING") == "PONG"
        assert len(state.sessions) == 1


async def test_malformed_command_after_good_ones(open_peer: Callable[..., Peer]) -> None:
    async with ready(open_peer) as peer:
        await peer.send(["SET", "a", 1], "not a command")  # type: ignore[arg-type]
        replies = await peer.messages(3)
        assert replies[0] == (REPLY, "OK")
        assert replies[1][0] == ERROR and len(replies) == 2
        assert await peer.closed()


async def test_client_kill_pushes_the_reason_then_closes(open_peer: Callable[..., Peer]) -> None:
    async with ready(open_peer) as victim, ready(open_peer) as killer:
        victim_id = victim.conn.session.connection_id  # type: ignore[union-attr]
        killer_id = killer.conn.session.connection_id  # type: ignore[union-attr]
        assert await killer.call("CLIENT", "KILL", "ID", victim_id) == 1
        assert await victim.messages(2) == [(PUSH, Push("kill", (f"killed by client {killer_id}",)))]
        assert await victim.closed()


async def test_killing_yourself_answers_then_closes_running_nothing_after(
    open_peer: Callable[..., Peer],
) -> None:
    async with ready(open_peer) as peer:
        me = peer.conn.session.connection_id  # type: ignore[union-attr]
        await peer.send(["CLIENT", "KILL", "ID", me], ["PING"])
        replies = await peer.messages(3)
        assert replies == [(REPLY, 1), (PUSH, Push("kill", (f"killed by client {me}",)))]
        assert await peer.closed()


async def test_a_hostile_bignum_costs_only_its_own_connection(open_peer: Callable[..., Peer]) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    before = open_peer()
    hello = before.conn.hello.to_wire()
    hello["version"] = 1 << 15000
    await before.stream.send_all(encode_frame(hello))
    [(kind, error)] = await before.messages(2)
    assert kind == ERROR and "unsupported protocol version <int of 15001 bits>" in str(error)
    async with ready(open_peer) as after, ready(open_peer) as bystander:
        await after.send([1 << 15000, "x"])
        [(kind, error)] = await after.messages(2)
        assert kind == ERROR and "got <list of 2>" in str(error)
        assert await bystander.call("PING") == "PONG"
    assert state.stats.protocol_errors == 2


async def test_names_with_spaces_are_refused_in_the_handshake(open_peer: Callable[..., Peer]) -> None:
    peer = open_peer()
    hello = peer.conn.hello.to_wire()
    hello["name"] = "two words"
    await peer.stream.send_all(encode_frame(hello))
    [(kind, error)] = await peer.messages(2)
    assert kind == ERROR and "without spaces" in str(error)


async def test_shutdown_closes_idle_sessions_with_a_notice(open_peer: Callable[..., Peer]) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    async with ready(open_peer) as peer:
        await peer.call("PING")
        state.close_sessions()
        assert await peer.messages(1) == [(PUSH, Push("kill", ("server is shutting down",)))]
        assert await peer.closed()


async def test_peer_vanishing_mid_frame_ends_quietly(open_peer: Callable[..., Peer]) -> None:
    state: ServerState = open_peer.state  # type: ignore[attr-defined]
    async with ready(open_peer) as peer:
        await peer.stream.send_all(encode_frame(["SET", "k", b"x" * 100])[:20])
        await peer.stream.aclose()
        with trio.fail_after(5):
            while len(state.sessions):
                await trio.sleep(0.01)
    assert "k" not in state.keyspace


async def test_verbose_log_names_commands_and_keys_never_values(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    state = ServerState(make_config(verbose=True))
    peer = Peer(_memory(state, nursery))
    with caplog.at_level(logging.INFO, logger="kv_server"):
        await peer.handshake()
        await peer.call("SET", "visible-key", "secret value")
        await peer.call("CLIENT", "KILL", "ID", 999)
    text = caplog.text
    assert "SET 'visible-key' <text 12>" in text
    assert "CLIENT KILL 'ID' 999" in text
    assert "secret value" not in text and PASSWORD not in text


async def test_a_kill_never_lands_inside_a_half_sent_reply(nursery: trio.Nursery) -> None:
    state = ServerState(make_config())
    victim = Peer(_socketpair(state, nursery))
    killer = Peer(_socketpair(state, nursery))
    async with victim.stream, killer.stream:
        await victim.handshake()
        await killer.handshake()
        await victim.call("SET", "big", b"x" * 4_000_000)
        await victim.send(["GET", "big"])  # and do not read: the server blocks mid-reply
        [session] = [s for s in state.sessions if s.id == victim.conn.session.connection_id]  # type: ignore[union-attr]
        with trio.fail_after(10):
            while not session.replying:
                await trio.sleep(0.01)
        assert await killer.call("CLIENT", "KILL", "ID", session.id) == 1
        received = bytearray()
        while data := await victim.stream.receive_some():
            received += data
        decoder = FrameDecoder()
        assert decoder.feed(bytes(received)) == []  # the cut reply, and no push glued to it
        assert 0 < decoder.buffered < 4_000_000


async def test_replies_split_by_the_output_limit_never_overtake_a_subscribers_messages(
        nursery: trio.Nursery) -> None:
    """A batch that subscribes and passes --client-output-limit runs its rest through the
    subscriber's outbox, after what was published meanwhile (from a review: the rest
    went straight to the stream, ahead of the messages)."""
    state = ServerState(make_config(client_output_limit=1024))
    client, server = trio.testing.lockstep_stream_pair()  # every send waits for a read
    nursery.start_soon(_serve, state, StreamTransport(server))
    subscriber, publisher = Peer(client), Peer(_socketpair(state, nursery))
    async with subscriber.stream, publisher.stream:
        await subscriber.handshake()
        await publisher.handshake()
        await subscriber.send(["SUBSCRIBE", "ch"], *[["PING", "p" * 200]] * 20, ["PING", "barrier"])
        assert await publisher.call("PUBLISH", "ch", "hello") == 1  # the server is mid-send
        found = await subscriber.messages(23)
        assert found.index((PUSH, Push("message", ("ch", "hello")))) < found.index((REPLY, "barrier"))
