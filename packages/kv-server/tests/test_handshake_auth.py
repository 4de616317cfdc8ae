"""The handshake as the connection handler runs it: read-only logins and throttling.

Each connection gets its own peer address, so the throttle's per-peer bookkeeping is
visible; trio's autojump clock makes its delays instant and measurable.
"""

from __future__ import annotations

import functools
import logging

import pytest
import trio
import trio.testing

from kv_protocol.errors import NoPermError, ProtoError, WrongPassError
from kv_protocol.messages import ERROR
from kv_server._auth_throttle import BASE_DELAY_S, MAX_DELAY_S
from kv_server._connection import StreamTransport, serve_connection
from kv_server._state import ServerState
from protocol_helpers import PASSWORD
from server_helpers import Peer, make_config

READONLY_PASSWORD = "look, do not touch"


@pytest.fixture
def state() -> ServerState:
    return ServerState(make_config(readonly_password=READONLY_PASSWORD, handshake_timeout_s=1))


def connect(state: ServerState, nursery: trio.Nursery, addr: str, password: str = PASSWORD) -> Peer:
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(functools.partial(serve_connection, state, StreamTransport(server),
                                         kind="tcp", addr=addr, laddr="127.0.0.1:6378"))
    return Peer(client, password)


async def fail(state: ServerState, nursery: trio.Nursery, addr: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(WrongPassError):
            await connect(state, nursery, addr, "wrong").handshake()


async def handshake_time(peer: Peer) -> float:
    started = trio.current_time()
    await peer.handshake()
    return trio.current_time() - started


async def test_the_readonly_password_opens_a_readonly_session(
    state: ServerState, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    writer = connect(state, nursery, "10.0.0.1:1000")
    await writer.handshake()
    assert await writer.call("SET", "k", "v") == "OK"
    with caplog.at_level(logging.INFO, logger="kv_server"):
        reader = connect(state, nursery, "10.0.0.2:1000", READONLY_PASSWORD)
        await reader.handshake()
    assert "read-only" in caplog.text and READONLY_PASSWORD not in caplog.text
    assert await reader.call("GET", "k") == "v"
    await reader.send(["SET", "k", "changed"], ["GET", "k"])
    [(kind, error), (_, value)] = await reader.messages(2)
    assert kind == ERROR and isinstance(error, NoPermError) and value == "v"
    users = {c["addr"]: c["user"] for c in await writer.call("CLIENT", "LIST")}  # type: ignore[union-attr]
    assert users == {"10.0.0.1:1000": "default", "10.0.0.2:1000": "readonly"}


async def test_failures_delay_that_peers_next_proof_and_no_one_elses(
    state: ServerState, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    await fail(state, nursery, "10.0.0.1:1000", 3)
    assert state.stats.auth_failures == 3
    # The right password waits too: a prompt answer would tell a guesser it was right.
    assert await handshake_time(connect(state, nursery, "10.0.0.1:2000")) == pytest.approx(4 * BASE_DELAY_S)
    assert await handshake_time(connect(state, nursery, "10.0.0.1:3000")) == 0  # success reset it
    await fail(state, nursery, "10.0.0.1:1000", 2)
    assert await handshake_time(connect(state, nursery, "10.0.0.2:1000")) == 0


async def test_the_delay_moves_the_handshake_deadline(
    state: ServerState, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    await fail(state, nursery, "10.0.0.1:1000", 12)
    assert state.config.handshake_timeout_s < MAX_DELAY_S
    assert await handshake_time(connect(state, nursery, "10.0.0.1:2000")) == pytest.approx(MAX_DELAY_S)
    assert state.stats.handshake_timeouts == 0


async def test_parallel_guesses_from_one_peer_take_turns_and_never_block_others(
    state: ServerState, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    await fail(state, nursery, "10.0.0.1:1000", 10)  # at the cap
    outcomes: list[tuple[str, float]] = []

    async def guess(port: int) -> None:
        started = trio.current_time()
        try:
            await connect(state, nursery, f"10.0.0.1:{port}", "wrong").handshake()
        except WrongPassError:
            outcomes.append(("checked", trio.current_time() - started))
        except ProtoError as exc:
            outcomes.append((str(exc), trio.current_time() - started))

    async with trio.open_nursery() as guesses:
        for port in range(5):
            guesses.start_soon(guess, port)
        await trio.sleep(0)
        assert await handshake_time(connect(state, nursery, "10.0.0.9:1000")) == 0
    checked = sorted(seconds for kind, seconds in outcomes if kind == "checked")
    assert checked == pytest.approx([MAX_DELAY_S, 2 * MAX_DELAY_S])  # one turn each
    refused = "PROTO too many failed handshakes from this address: try again later"
    assert [seconds for kind, seconds in outcomes if kind == refused] == [0, 0, 0]
    assert state.stats.auth_failures == 12


async def test_hanging_up_during_the_delay_saves_nothing(
    state: ServerState, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    await fail(state, nursery, "10.0.0.1:1000", 4)
    peer = connect(state, nursery, "10.0.0.1:2000", "wrong")
    await peer.stream.send_all(peer.conn.data_to_send())
    peer.conn.receive_data(await peer.stream.receive_some())  # the challenge
    await peer.stream.send_all(peer.conn.data_to_send())  # the proof
    await trio.sleep(BASE_DELAY_S)
    await peer.stream.aclose()
    await trio.sleep(MAX_DELAY_S)
    assert state.stats.auth_failures == 5 and len(state.sessions) == 0
    assert state.auth_throttle.delay_s("10.0.0.1") == 16 * BASE_DELAY_S


async def test_a_readonly_login_does_not_reset_the_count(
    state: ServerState, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Otherwise a reader could guess the main password between its own logins."""
    await fail(state, nursery, "10.0.0.1:1000", 3)
    await connect(state, nursery, "10.0.0.1:2000", READONLY_PASSWORD).handshake()
    assert state.auth_throttle.delay_s("10.0.0.1") == 4 * BASE_DELAY_S
    await connect(state, nursery, "10.0.0.1:3000").handshake()
    assert state.auth_throttle.delay_s("10.0.0.1") == 0


async def test_info_counts_failures_and_throttled_peers(
    state: ServerState, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    await fail(state, nursery, "10.0.0.1:1000", 2)
    await fail(state, nursery, "[2001:db8::1]:1000", 1)
    await fail(state, nursery, "[2001:db8::2]:1000", 1)  # the same /64
    peer = connect(state, nursery, "10.0.0.3:1000", READONLY_PASSWORD)
    await peer.handshake()
    info = await peer.call("INFO")
    assert isinstance(info, dict)
    assert (info["stats"]["total_auth_failures"], info["stats"]["auth_throttled_peers"]) == (4, 2)
    assert info["clients"]["readonly_clients"] == 1
