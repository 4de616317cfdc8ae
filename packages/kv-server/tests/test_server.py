"""serve(): listeners, the task_status handshake and the staged shutdown, in-process."""

from __future__ import annotations

import functools
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from kv_protocol.messages import PUSH, Push
from kv_server import ServerState, serve
from server_helpers import Peer, make_config

Start = Callable[..., Awaitable[ServerState]]


@pytest.fixture
def start(tmp_path_factory: pytest.TempPathFactory) -> Start:
    """Start a server in a nursery, with a fresh data directory unless one is given."""

    async def run(nursery: trio.Nursery, **changes: object) -> ServerState:
        changes.setdefault("data_dir", tmp_path_factory.mktemp("data"))
        state: ServerState = await nursery.start(functools.partial(serve, make_config(**changes)))
        return state

    return run


async def test_serves_tcp_on_a_free_port_and_shuts_down_in_stages(nursery: trio.Nursery,
                                                                 start: Start) -> None:
    with trio.fail_after(10):
        state = await start(nursery)
        assert state.tcp_port > 0
        assert state.addresses == [f"tcp 127.0.0.1:{state.tcp_port}"]
        peer = Peer(await trio.open_tcp_stream("127.0.0.1", state.tcp_port))
        async with peer.stream:
            await peer.handshake()
            assert await peer.call("PING") == "PONG"
            state.request_shutdown()
            assert await peer.messages(1) == [(PUSH, Push("kill", ("server is shutting down",)))]
            assert await peer.closed()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", state.tcp_port)


async def test_unix_socket_is_private_and_removed_on_shutdown(
    nursery: trio.Nursery, start: Start, tmp_path: Path
) -> None:
    path = tmp_path / "kv.sock"
    with trio.fail_after(10):
        state = await start(nursery, bind=(), unix_path=path)
        assert state.addresses == [f"unix {path}"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        peer = Peer(await trio.open_unix_socket(str(path)))
        async with peer.stream:
            await peer.handshake()
            assert await peer.call("CLIENT", "LIST") != []
        state.request_shutdown()
        while path.exists():
            await trio.sleep(0.01)


async def test_stale_unix_socket_file_is_replaced(nursery: trio.Nursery, start: Start,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "kv.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a killed server leaves
    state = await start(nursery, bind=(), unix_path=path)
    state.request_shutdown()


async def test_a_live_unix_socket_is_not_stolen(nursery: trio.Nursery, start: Start, tmp_path: Path) -> None:
    path = tmp_path / "kv.sock"
    first = await start(nursery, bind=(), unix_path=path)
    with pytest.raises(OSError, match="another server is listening"):
        await start(nursery, bind=(), unix_path=path)
    first.request_shutdown()


async def test_port_in_use_fails_before_starting(nursery: trio.Nursery, start: Start) -> None:
    first = await start(nursery)
    with pytest.raises(OSError):
        await start(nursery, port=first.tcp_port)
    first.request_shutdown()


async def test_a_data_directory_in_use_fails_before_starting(nursery: trio.Nursery, start: Start,
                                                             tmp_path: Path) -> None:
    first = await start(nursery, data_dir=tmp_path)
    with pytest.raises(OSError, match="in use by another kv-server"):
        await start(nursery, data_dir=tmp_path)
    first.request_shutdown()
