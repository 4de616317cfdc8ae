"""Connection limits on a real server: --maxclients, --timeout, --max-arguments."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_helpers import RawConnection, start_server
from kv_protocol.errors import OomError, TooBigError
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import ERROR, PUSH, Push, decode_message


def frames_until_closed(conn: RawConnection) -> list[tuple[int, object]]:
    conn.sock.settimeout(10)
    return conn.messages()


@pytest.fixture
def opened() -> Iterator[list[RawConnection]]:
    """Connections a test opens, closed after it."""
    conns: list[RawConnection] = []
    yield conns
    for conn in conns:
        conn.close()


def test_connections_past_maxclients_are_refused_with_a_message(
        tmp_path: Path, opened: list[RawConnection]) -> None:
    server = start_server(tmp_path, "--maxclients", "3")
    try:
        held = [RawConnection(server) for _ in range(3)]
        opened += held
        for conn in held:
            conn.handshake()
        extra = RawConnection(server)
        opened.append(extra)
        [(kind, error)] = frames_until_closed(extra)
        assert kind == ERROR and "max number of clients reached" in str(error)
        held.pop().close()
        time.sleep(0.5)  # the server notices the close on its next turn
        late = RawConnection(server)
        opened.append(late)
        late.handshake()
        assert late.call("PING") == "PONG"
        info = late.call("INFO", "stats", "clients")
        assert info["stats"]["rejected_connections"] >= 1  # type: ignore[index]
        assert info["clients"]["maxclients"] == 3  # type: ignore[index]
    finally:
        server.stop()


def test_idle_connections_are_closed_with_a_notice_but_subscribers_stay(
        tmp_path: Path, opened: list[RawConnection]) -> None:
    server = start_server(tmp_path, "--timeout", "0.5")
    try:
        idle, subscriber = RawConnection(server), RawConnection(server)
        opened += [idle, subscriber]
        idle.handshake()
        subscriber.handshake()
        assert subscriber.call("SUBSCRIBE", "ch") == 1
        time.sleep(2)
        [(kind, notice)] = frames_until_closed(idle)
        assert kind == PUSH and notice == Push("kill", ("idle for more than 0.5 s",))
        publisher = RawConnection(server)
        opened.append(publisher)
        publisher.handshake()
        assert publisher.call("PUBLISH", "ch", 7) == 1
        subscriber.sock.settimeout(10)
        decoder, data = FrameDecoder(), subscriber.sock.recv(65536)
        assert [decode_message(f) for f in decoder.feed(data)] == [
            (PUSH, Push("message", ("ch", 7)))]
        assert publisher.call("INFO", "stats")["stats"]["total_idle_disconnects"] == 1  # type: ignore[index]
    finally:
        server.stop()


def test_a_command_past_max_arguments_is_refused_and_the_connection_stays(
        tmp_path: Path, opened: list[RawConnection]) -> None:
    server = start_server(tmp_path, "--max-arguments", "100")
    try:
        conn = RawConnection(server)
        opened.append(conn)
        conn.handshake()
        conn.sock.sendall(encode_frame(["DEL", *range(200)]) + encode_frame(["PING"]))
        conn.sock.settimeout(10)
        found: list[tuple[int, object]] = []
        while len(found) < 2:
            found += [decode_message(f) for f in conn.decoder.feed(conn.sock.recv(65536))]
        assert isinstance(found[0][1], TooBigError) and found[1] == (0, "PONG")
    finally:
        server.stop()


def _used_memory(conn: RawConnection) -> int:
    return conn.call("INFO", "memory")["memory"]["used_memory"]  # type: ignore[index,no-any-return]


def test_maxmemory_noeviction_answers_oom_and_keeps_serving_reads(
        tmp_path: Path, opened: list[RawConnection]) -> None:
    probe = start_server(tmp_path / "probe")
    try:
        conn = RawConnection(probe)
        opened.append(conn)
        conn.handshake()
        baseline = _used_memory(conn)
    finally:
        probe.stop()
    limit = baseline + 8 * 1024 * 1024
    server = start_server(tmp_path / "data", "--maxmemory", str(limit))
    try:
        conn = RawConnection(server)
        opened.append(conn)
        conn.handshake()
        conn.sock.settimeout(10)
        value, written, refused = b"v" * 1000, 0, None
        for i in range(100_000):  # 100 MB at most: far past an 8 MiB allowance
            conn.sock.sendall(encode_frame(["SET", f"k{i}", value]))
            [(kind, reply)] = [decode_message(f) for f in conn.decoder.feed(conn.sock.recv(65536))]
            if kind == ERROR:
                refused = reply
                break
            written += 1
        assert isinstance(refused, OomError) and 1000 < written < 100_000
        assert conn.call("GET", "k0") == value and conn.call("DEL", "k0") == 1
        info = conn.call("INFO", "memory")["memory"]  # type: ignore[index]
        assert info["maxmemory"] == limit and info["oom_rejections"] >= 1
    finally:
        server.stop()


def test_maxmemory_allkeys_lru_keeps_memory_bounded_and_the_keys_in_use(
        tmp_path: Path, opened: list[RawConnection]) -> None:
    server = start_server(tmp_path, "--maxmemory", "1g", "--maxmemory-policy", "allkeys-lru")
    try:
        conn = RawConnection(server)
        opened.append(conn)
        conn.handshake()
        conn.sock.settimeout(30)
        baseline = _used_memory(conn)
    finally:
        server.stop()
    limit = baseline + 8 * 1024 * 1024
    server = start_server(tmp_path / "lru", "--maxmemory", str(limit),
                          "--maxmemory-policy", "allkeys-lru")
    try:
        conn = RawConnection(server)
        opened.append(conn)
        conn.handshake()
        conn.sock.settimeout(30)
        conn.call("SET", "hot", "kept")
        value = b"v" * 1000
        for batch in range(300):  # 30 MB written through an 8 MiB allowance
            frames = b"".join(encode_frame(["SET", f"k{batch}:{i}", value]) for i in range(100))
            conn.sock.sendall(frames + encode_frame(["GET", "hot"]))
            replies: list[tuple[int, object]] = []
            while len(replies) < 101:
                replies += [decode_message(f) for f in conn.decoder.feed(conn.sock.recv(65536))]
            assert replies[-1] == (0, "kept") and all(kind == 0 for kind, _ in replies)
        info = conn.call("INFO", "memory")["memory"]  # type: ignore[index]
        assert info["evicted_keys"] > 10_000 and info["used_memory"] < limit + 1024 * 1024
        assert conn.call("GET", "k299:99") == value and conn.call("GET", "k0:0") is None
    finally:
        server.stop()

