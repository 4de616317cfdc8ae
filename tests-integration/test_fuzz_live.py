"""A live kv-server under hostile connections, while one honest client checks its data.

Twenty attacker threads open connections (bounded by count and by time) and send
what a broken or malicious peer sends: random bytes before and after the handshake,
valid frames with bits flipped, huge and near-limit length prefixes, nesting past
the depth limit, half a handshake, frames cut off by a disconnect. Meanwhile a
checker client (kv_client, one connection for the whole test) keeps reading back
what it wrote and writing more. Afterwards:

- the server is still up and answers, on the checker's original connection;
- every checker command succeeded and its data is exactly what it wrote;
- the server's RSS grew by no more than a slack (a frame's length is checked before
  the body is awaited, so a near-limit prefix must not allocate its size);
- the server's log holds no traceback (the connection loop logs one for a bug).

Authenticated attacker connections complete their handshake before any attack
starts: failed handshakes make the server delay the next proof from the same
address (kv_server._auth_throttle), which would stall the attackers, not the test.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from integration_helpers import RawConnection, ServerProcess, start_server
from kv_client import Client
from kv_protocol.connection import ClientConnection
from kv_protocol.framing import DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_SIZE, encode_frame
from kv_protocol.values import Key

ATTACKERS: Final = 20
CONNECTIONS_PER_ATTACKER: Final = 50
"""Each attacker thread's bound on connections; the time bound below usually ends it first."""
ATTACK_S: Final = 6.0
AUTHENTICATED_PER_ATTACKER: Final = 4
"""Connections each attacker authenticates before the attack, for post-handshake attacks."""
RSS_SLACK_KB: Final = 64 * 1024
"""Growth allowed over the attack: buffers, trio's per-connection state, allocator slack.
Twenty near-limit frame prefixes would cost over a gigabyte if the server allocated them."""
SOCKET_TIMEOUT_S: Final = 5.0
CHECKER_KEYS: Final = 50


def vm_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


# -- what attackers send ----------------------------------------------------------

VALID_FRAMES: Final = [
    encode_frame(["SET", "fz:a", "value"]), encode_frame(["GET", "fz:a"]),
    encode_frame(["RPUSH", "fz:l", 1, b"two", 3.5, None, [1, {"x": True}]]),
    encode_frame(["HSET", "fz:h", "f", 2**70]), encode_frame(["LRANGE", "fz:l", 0, -1]),
    encode_frame(["INCRBY", "fz:n", 7]), encode_frame(["SET", "fz:e", 1, "PX", 50]),
]


def mutated(rng: random.Random) -> bytes:
    """A few valid frames with a few bytes flipped, dropped or duplicated."""
    data = bytearray(b"".join(rng.choice(VALID_FRAMES) for _ in range(rng.randint(1, 6))))
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.5:
            data[at] ^= 1 << rng.randrange(8)
        elif choice < 0.75:
            del data[at : at + rng.randint(1, 8)]
        else:
            data[at:at] = data[at : at + rng.randint(1, 16)]
        if not data:
            break
    return bytes(data)


def deep_nesting(rng: random.Random) -> bytes:
    depth = DEFAULT_MAX_DEPTH + rng.randint(1, 10_000)
    body = b"\x81" * depth + b"\x00"  # arrays of one array of ... of 0
    return len(body).to_bytes(4, "big") + body


def huge_prefix(rng: random.Random) -> bytes:
    over = rng.choice([DEFAULT_MAX_FRAME_SIZE + 1, 2**32 - 1, 0x47455420])  # "GET " read as a length
    return over.to_bytes(4, "big") + rng.randbytes(rng.randint(0, 64))


def near_limit_prefix(rng: random.Random) -> bytes:
    """A frame that may legally be 64 MiB, of which only a few KiB ever arrive."""
    return (DEFAULT_MAX_FRAME_SIZE - rng.randint(0, 1024)).to_bytes(4, "big") + rng.randbytes(4096)


def truncated(rng: random.Random) -> bytes:
    frame = rng.choice(VALID_FRAMES)
    return frame[: rng.randrange(1, len(frame))]


HELLO: Final = ClientConnection("any password", name="fuzz").data_to_send()
"""A valid hello (the password only matters for the proof, which never comes)."""
PAYLOADS: Final[list[Callable[[random.Random], bytes]]] = [
    lambda rng: rng.randbytes(rng.randint(1, 2048)), mutated, deep_nesting, huge_prefix,
    near_limit_prefix, truncated,
]


def _drain(sock: socket.socket) -> None:
    """Read whatever the server answers, until it closes or goes quiet."""
    sock.settimeout(0.2)
    try:
        for _ in range(64):  # bounded: a close or a quiet 0.2 s ends it sooner
            if not sock.recv(65536):
                return
    except OSError:
        return


def attack(server: ServerProcess, seed: int, ready: list[RawConnection], deadline: float,
           sent: list[int]) -> None:
    rng = random.Random(seed)
    for _ in range(CONNECTIONS_PER_ATTACKER):
        if time.monotonic() > deadline:
            return
        payload = rng.choice(PAYLOADS)(rng)
        try:
            if ready and rng.random() < 0.5:
                sock = ready.pop().sock  # authenticated before the attack began
            else:
                sock = socket.create_connection((server.host, server.port), timeout=SOCKET_TIMEOUT_S)
                if rng.random() < 0.3:  # half a handshake: a valid hello, then junk
                    sock.sendall(HELLO)
            with sock:
                cut = rng.random() < 0.3  # disconnect mid-frame, without reading
                sock.sendall(payload[: len(payload) // 2] if cut else payload)
                if not cut:
                    _drain(sock)
            sent[0] += 1
        except OSError:
            sent[1] += 1  # reset by the server while sending: it closed us, as it may


# -- the checker ------------------------------------------------------------------


def checker_data() -> dict[Key, Any]:
    data: dict[Key, Any] = {f"checker:s{i}": [i, f"text {i}", b"\x00\xff" * i, 2**70 + i, i / 3]
                            for i in range(CHECKER_KEYS)}
    data["checker:none"] = None
    return data


def check(kv: Client, data: dict[Key, Any], rounds: int) -> None:
    assert kv.mget(*data) == list(data.values())
    assert kv.lrange("checker:list", 0, -1) == list(range(rounds))
    assert kv.hgetall("checker:hash") == {f"f{i}": i for i in range(rounds)}
    assert kv.get("checker:counter") == rounds


def test_hostile_connections_leave_the_server_and_other_clients_intact(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    data = checker_data()
    with server.client(name="checker", timeout=30) as kv:
        kv.mset(data)
        connection_id = kv.execute("CLIENT", "ID")
        rounds = 0
        kv.rpush("checker:list", rounds)
        kv.hset("checker:hash", {f"f{rounds}": rounds})
        kv.incr("checker:counter")
        rounds = 1
        check(kv, data, rounds)
        ready: list[list[RawConnection]] = []
        for _ in range(ATTACKERS):
            own = []
            for _ in range(AUTHENTICATED_PER_ATTACKER):
                raw = RawConnection(server)
                raw.handshake()
                own.append(raw)
            ready.append(own)
        rss_before = vm_rss_kb(server.proc.pid)

        deadline = time.monotonic() + ATTACK_S
        counts = [[0, 0] for _ in range(ATTACKERS)]
        threads = [threading.Thread(target=attack, args=(server, seed, ready[seed], deadline, counts[seed]))
                   for seed in range(ATTACKERS)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads) and rounds < 10_000:
            kv.rpush("checker:list", rounds)
            kv.hset("checker:hash", {f"f{rounds}": rounds})
            kv.incr("checker:counter")
            rounds += 1
            check(kv, data, rounds)
        for thread in threads:
            thread.join(SOCKET_TIMEOUT_S * 4)
        assert not any(thread.is_alive() for thread in threads), "an attacker hung"
        for own in ready:
            for raw in own:
                raw.close()

        assert server.proc.poll() is None, server.log()
        check(kv, data, rounds)
        assert kv.execute("CLIENT", "ID") == connection_id, "the checker's connection was replaced"
        stats = kv.info("stats")["stats"]
        rss_after = vm_rss_kb(server.proc.pid)
    attacks = sum(sent for sent, _ in counts)
    assert attacks >= ATTACKERS, counts
    assert stats["total_protocol_errors"] > 0, stats
    assert rss_after - rss_before < RSS_SLACK_KB, (rss_before, rss_after)
    assert server.stop() == 0, server.log()
    log = server.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
