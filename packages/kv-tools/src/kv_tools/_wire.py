"""What kv-bench sends and what it expects back: the tests and the three wire formats.

Three wire formats share the workload: kv (handshake, then ``[0, value]`` replies),
RESP for redis-server, and the bare CBOR frames of the reference server in
../shared/bench (no handshake, bare values, SET and GET only).

Rules:

1. A test whose replies are all the same bytes (SET's OK, a GET of a prefilled key,
   a pop from a list filled for the run) names them, and the loader compares bytes:
   the cheapest check there is.
2. A test whose replies vary (INCR's counts, a push's new length) is checked by
   ``scan``, which counts whole replies and raises on an error reply. RESP integers
   are counted at C speed (a batch of them is lines that all start with ``:``), so
   the loader does not slow redis-server's figures down more than kv's.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from kv_client import ClientConfig
from kv_client._sync import SyncConnection
from kv_protocol.framing import HEADER, FrameDecoder, encode_frame
from kv_protocol.messages import encode_reply

KEY_WIDTH: Final = 12  # key:000000000042 is 16 characters, like redis-benchmark's keys
# Fields per hash for hset/hget: every hash of the keyspace is prefilled with all of
# them, so HGET always finds its field and HSET always overwrites one (reply 0).
HASH_FIELDS: Final = 10
# The one list the list tests push onto and pop from, as redis-benchmark's
# ``LPUSH mylist``: pops then never depend on which keys the random draws hit.
LIST_KEY: Final = "mylist"
REFERENCE_COMMANDS: Final = frozenset({"SET", "GET"})  # all that its kvcore.execute knows
# Keys per MSET, as redis-benchmark's "MSET (10 keys)": one request writes 10 keys.
MSET_KEYS: Final = 10

Reply = Literal["ok", "pong", "value", "zero", "varies"]
Prefill = Literal["", "strings", "hashes", "list"]


def key_name(number: int, prefix: str = "key") -> str:
    return f"{prefix}:{number:0{KEY_WIDTH}d}"


def field_name(number: int) -> str:
    return f"field:{number}"


@dataclass(frozen=True, slots=True)
class Test:
    """One benchmark test: the command it sends and the reply it expects."""

    name: str
    # Filled in per request: "{key}", "{counter}" and "{hash}" by a random key
    # number (with their own prefixes, so that the types never collide), "{field}"
    # by a random field, "{value}" by the value. Each "{key}" of a command gets its
    # own number (MSET's ten keys), as each __rand_int__ of redis-benchmark does.
    command: tuple[str, ...]
    reply: Reply  # what every reply is; "varies": counted and checked for errors only
    # Data the replies assume, written before each run by ``_loadgen.prepare``:
    # "strings" sets every key, "hashes" every field of every hash, "list" refills
    # LIST_KEY with more elements than the run can pop.
    prefill: Prefill = ""

    @property
    def keys(self) -> int:
        """How many random key numbers one request takes."""
        return max(1, self.command.count("{key}"))


TESTS: Final = {
    "ping": Test("ping", ("PING",), "pong"),
    "set": Test("set", ("SET", "{key}", "{value}"), "ok"),
    "get": Test("get", ("GET", "{key}"), "value", prefill="strings"),
    "incr": Test("incr", ("INCR", "{counter}"), "varies"),
    "lpush": Test("lpush", ("LPUSH", LIST_KEY, "{value}"), "varies"),
    "rpush": Test("rpush", ("RPUSH", LIST_KEY, "{value}"), "varies"),
    "lpop": Test("lpop", ("LPOP", LIST_KEY), "value", prefill="list"),
    "rpop": Test("rpop", ("RPOP", LIST_KEY), "value", prefill="list"),
    "hset": Test("hset", ("HSET", "{hash}", "{field}", "{value}"), "zero", prefill="hashes"),
    "hget": Test("hget", ("HGET", "{hash}", "{field}"), "value", prefill="hashes"),
    "mset": Test("mset", ("MSET", *("{key}", "{value}") * MSET_KEYS), "ok"),
}


def command(test: Test, number: int, value: bytes, field: int = 0,
            more: Sequence[int] = ()) -> list[str | bytes]:
    """``test``'s command for key ``number``; ``more`` numbers the second "{key}" onwards."""
    fill: dict[str, str | bytes] = {
        "{counter}": key_name(number, "counter"), "{hash}": key_name(number, "hash"),
        "{field}": field_name(field), "{value}": value,
    }
    keys = iter([number, *more])
    return [key_name(next(keys)) if part == "{key}" else fill.get(part, part) for part in test.command]


class Wire(Protocol):
    def connect(self) -> socket.socket: ...

    def supports(self, test: Test) -> bool: ...

    def encode(self, parts: list[str | bytes]) -> bytes: ...

    def reply(self, test: Test, value: bytes) -> bytes | None:
        """Every reply of ``test``, or None when they vary (then ``scan`` checks them)."""
        ...

    def scan(self, data: bytearray, start: int, end: int) -> tuple[int, int]:
        """Count the whole replies in ``data[start:end]``, which starts at a reply.

        Returns:
            How many there are and where the last one ends.

        Raises:
            RuntimeError: one of them is an error reply.
        """
        ...


def _tcp(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _scan_frames(data: bytearray, start: int, end: int, kv: bool) -> tuple[int, int]:
    """Whole frames (4-byte big-endian length, CBOR body); kv's start ``[0, ``."""
    count, pos, unpack = 0, start, HEADER.unpack_from
    while end - pos >= 4:
        (size,) = unpack(data, pos)
        stop = pos + 4 + size
        if stop > end:
            break
        # [0, value] is 0x82 0x00; a kv error [1, code, message] starts 0x83 0x01,
        # the reference server's error is a map {"error": message} (0xa1).
        if size < 2 or ((data[pos + 4] != 0x82 or data[pos + 5] != 0) if kv else data[pos + 4] == 0xA1):
            raise RuntimeError(f"error reply {FrameDecoder().feed(bytes(data[pos:stop]))!r}")
        count, pos = count + 1, stop
    return count, pos


@dataclass(frozen=True, slots=True)
class KvWire:
    host: str
    port: int
    password: str = field(repr=False)

    def connect(self) -> socket.socket:
        connection = SyncConnection(ClientConfig(self.password, host=self.host, port=self.port,
                                                 name="kv-bench", timeout_s=30))
        return connection.sock

    def supports(self, test: Test) -> bool:
        return True

    def encode(self, parts: list[str | bytes]) -> bytes:
        return encode_frame(parts)

    def reply(self, test: Test, value: bytes) -> bytes | None:
        if test.reply == "varies":
            return None
        return encode_reply({"ok": "OK", "pong": "PONG", "value": value, "zero": 0}[test.reply])

    def scan(self, data: bytearray, start: int, end: int) -> tuple[int, int]:
        return _scan_frames(data, start, end, kv=True)


@dataclass(frozen=True, slots=True)
class ReferenceWire:
    """The minimal server of ../shared/bench: no handshake, bare values both ways."""

    host: str
    port: int

    def connect(self) -> socket.socket:
        return _tcp(self.host, self.port)

    def supports(self, test: Test) -> bool:
        return test.command[0] in REFERENCE_COMMANDS

    def encode(self, parts: list[str | bytes]) -> bytes:
        return encode_frame(parts)

    def reply(self, test: Test, value: bytes) -> bytes | None:
        if not self.supports(test):
            raise ValueError("the reference server only knows SET and GET")
        return encode_frame({"ok": "OK", "value": value}[test.reply])

    def scan(self, data: bytearray, start: int, end: int) -> tuple[int, int]:
        return _scan_frames(data, start, end, kv=False)


@dataclass(frozen=True, slots=True)
class RespWire:
    host: str
    port: int

    def connect(self) -> socket.socket:
        return _tcp(self.host, self.port)

    def supports(self, test: Test) -> bool:
        return True

    def encode(self, parts: list[str | bytes]) -> bytes:
        raw = [p.encode() if isinstance(p, str) else p for p in parts]
        return b"*%d\r\n" % len(raw) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in raw)

    def reply(self, test: Test, value: bytes) -> bytes | None:
        if test.reply == "varies":
            return None
        if test.reply == "value":
            return b"$%d\r\n%s\r\n" % (len(value), value)
        return {"ok": b"+OK\r\n", "pong": b"+PONG\r\n", "zero": b":0\r\n"}[test.reply]

    def scan(self, data: bytearray, start: int, end: int) -> tuple[int, int]:
        # The common case at C speed: whole lines that all start with ":" are that
        # many integer replies (a bulk string's body line follows a "$" line).
        lines = data.count(b"\r\n", start, end)
        if (lines and data[start] == 0x3A and data.endswith(b"\r\n", start, end)
                and data.count(b"\r\n:", start, end) == lines - 1):
            return lines, end
        count, pos = 0, start
        while pos < end:
            eol = data.find(b"\r\n", pos, end)
            if eol < 0:
                break
            kind = data[pos]
            if kind == 0x24:  # $: a bulk string, or $-1 for null
                size = int(data[pos + 1:eol])
                stop = eol + 2 + (size + 2 if size >= 0 else 0)
                if stop > end:
                    break
            elif kind in b"+:":
                stop = eol + 2
            else:  # "-": an error; nothing else is expected
                raise RuntimeError(f"error reply {bytes(data[pos:eol])!r}")
            count, pos = count + 1, stop
        return count, pos
