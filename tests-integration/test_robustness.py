"""Bad frames, vanishing peers and many connections: the server keeps serving."""

from __future__ import annotations

import threading

from integration_helpers import RawConnection, ServerProcess
from kv_client import Client
from kv_protocol.errors import ProtoError
from kv_protocol.framing import encode_frame
from kv_protocol.messages import ERROR, REPLY


def test_malformed_frame_disconnects_only_its_sender(kv_server: ServerProcess, client: Client) -> None:
    client.set("mine", "safe")
    raw = RawConnection(kv_server)
    raw.handshake()
    raw.sock.sendall(encode_frame(["SET", "a", 1]) + b"\x00\x00\x00\x03\xff\xff\xff")
    messages = raw.messages()
    assert messages[-1][0] == ERROR and isinstance(messages[-1][1], ProtoError)
    raw.close()
    assert client.get("mine") == "safe"
    assert client.info("stats")["stats"]["total_protocol_errors"] == 1


def test_wrong_shape_commands_answer_then_close(kv_server: ServerProcess) -> None:
    raw = RawConnection(kv_server)
    raw.handshake()
    raw.sock.sendall(encode_frame(["PING"]) + encode_frame({"not": "a command"}))
    messages = raw.messages()
    assert messages[0] == (REPLY, "PONG")
    assert isinstance(messages[1][1], ProtoError) and len(messages) == 2
    raw.close()


def test_oversized_frame_is_refused_before_it_is_sent(kv_server: ServerProcess, client: Client) -> None:
    raw = RawConnection(kv_server)
    raw.handshake()
    raw.sock.sendall((65 * 1024 * 1024).to_bytes(4, "big") + b"\xa0")
    [(kind, error)] = raw.messages()
    assert kind == ERROR and "exceeds the limit" in str(error)
    raw.close()
    assert client.ping() == "PONG"


def test_peer_vanishing_mid_frame(kv_server: ServerProcess, client: Client) -> None:
    raw = RawConnection(kv_server)
    raw.handshake()
    raw.sock.sendall(encode_frame(["SET", "half", b"x" * 1000])[:100])
    raw.close()
    assert client.get("half") is None
    assert client.ping() == "PONG"


def test_200_concurrent_connections_each_doing_work(kv_server: ServerProcess) -> None:
    connections, rounds = 200, 25
    errors: list[BaseException] = []
    barrier = threading.Barrier(connections, timeout=60)

    def work(n: int) -> None:
        try:
            with kv_server.client(name=f"worker-{n}", timeout=60) as kv:
                kv.connect()
                barrier.wait()
                for i in range(rounds):
                    kv.set(f"w{n}:{i}", [n, i])
                    kv.append(f"log{n}", f"{i},")
                assert kv.mget(*(f"w{n}:{i}" for i in range(rounds))) == [[n, i] for i in range(rounds)]
                assert kv.get(f"log{n}") == "".join(f"{i}," for i in range(rounds))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    with kv_server.client() as kv:
        assert kv.dbsize() == connections * (rounds + 1)
        assert kv.info("stats")["stats"]["total_connections_received"] >= connections


def test_a_bignum_in_the_handshake_does_not_take_the_server_down(
    kv_server: ServerProcess, client: Client
) -> None:
    raw = RawConnection(kv_server)
    hello = raw.conn.hello.to_wire()
    hello["version"] = 1 << 15000  # its repr() raises ValueError in Python 3.11+
    raw.sock.sendall(encode_frame(hello))
    [(kind, error)] = raw.messages()
    assert kind == ERROR and "<int of 15001 bits>" in str(error)
    raw.close()
    assert client.ping() == "PONG"
