"""atheris harness: arbitrary CBOR as command arrays, through kv-server's real dispatcher.

No socket: the same ``Dispatcher.execute_batch`` the connection loop calls, on a
small keyspace that holds one key of each type (and one with a deadline) before
the fuzzed batch runs. Two input layouts, chosen by bit 0x01 of the first byte:

- raw: the rest is a CBOR sequence; every item is one batch entry, command array
  or not (a malformed entry must get PROTO, never an exception);
- named: repeated ``<command index> <argument count> <CBOR items...>``, so mutated
  arguments reach each command's own code instead of stopping at the name.

What dispatch promises (kv_server._dispatch rules 2-5), checked per input:

- nothing escapes ``execute_batch``; its output is whole reply frames, one per
  entry, fewer only after PROTO or a CLIENT KILL of the session itself (a blocking
  command that blocks times out at once, as ``_run`` says);
- the keyspace stays sound: text or bytes keys, no empty list or hash, deadlines
  only for keys that exist;
- the write commands it logged, written as AOF records (kv_protocol.records.aof),
  read back and replayed by start-up's own code, rebuild the same keyspace
  (STYLE rule 10). A record the encoder refuses is the documented MISCONF case and
  ends the comparison for that input.

Run: ``python fuzz/fuzz_dispatch.py -dict=fuzz/dispatch.dict -max_total_time=60 fuzz/corpus/dispatch``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Final

import cbor2
from harness import fuzz_main

from kv_protocol.commands import COMMANDS
from kv_protocol.framing import _SEMANTIC_DECODERS, DEFAULT_MAX_DEPTH, FrameDecoder, _reject_tag
from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS
from kv_protocol.messages import decode_message, encode_reply
from kv_protocol.records.aof import AofReader, encode_header, encode_record
from kv_server._blocking import Blocking
from kv_server._config import ServerConfig
from kv_server._keyspace import MISSING, Keyspace, KvHash, KvList
from kv_server._pubsub import PubSub
from kv_server._recovery import _Replay
from kv_server._scan import Cursors
from kv_server._session import Session
from kv_server._state import ServerState

# A batch as long as a pipelining client's read may hold, short enough that one
# input stays a few milliseconds.
MAX_COMMANDS: Final = 32
MAX_ARGS: Final = 8
FLAG_NAMED: Final = 0x01
NOW_MS: Final = 1_700_000_000_000
"""A fixed clock, so that an input replays the same way and expiry is decided alike
live and in replay (replay sets the clock to each record's timestamp)."""
SETUP: Final[list[object]] = [
    ["SET", "s", "text"], ["SET", "n", 10], ["SET", b"b", b"\x00\xff"],
    ["RPUSH", "l", 1, "two", 3.0], ["HSET", "h", "f", 1, b"g", [1]],
    ["SET", "e", "soon", "PX", 5_000],
]


class _At:
    """A clock stopped at one instant (Unix milliseconds)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class _Log:
    """Stands in for the AppendOnlyFile: keeps what dispatch logs (``aof.log``)."""

    error: str | None = None

    def __init__(self) -> None:
        self.records: list[tuple[int, list[object]]] = []

    def log(self, timestamp_ms: int, argv: list[object]) -> None:
        self.records.append((timestamp_ms, list(argv)))


def _state() -> ServerState:
    return ServerState(ServerConfig(password="fuzz", auth_iterations=MIN_PBKDF2_ITERATIONS, port=0))


# Built once: a ServerState costs milliseconds (the dispatcher's table, PBKDF2);
# each input gets a fresh keyspace, cursors and session instead.
LIVE: Final = _state()
REPLAYED: Final = _state()


def _reset(state: ServerState) -> Session:
    state.keyspace = Keyspace(_At(NOW_MS))
    state.blocking = state.dispatcher.blocking = Blocking(state.keyspace)
    state.pubsub = PubSub()
    state.cursors = Cursors()
    for old in list(state.sessions):
        state.sessions.remove(old)
    session = Session(state, state.sessions.next_id(), transport="fuzz", addr="fuzz:1", laddr="fuzz:0")
    state.sessions.add(session)
    return session


def _decoder(data: bytes) -> cbor2.CBORDecoder:
    """A CBOR decoder with the frame decoder's safety rules (framing.py rule 3)."""
    return cbor2.CBORDecoder(io.BytesIO(data), max_depth=DEFAULT_MAX_DEPTH,
                             semantic_decoders=_SEMANTIC_DECODERS, tag_hook=_reject_tag,
                             allow_duplicate_keys=False)


def _items(decoder: cbor2.CBORDecoder, limit: int) -> list[object]:
    """Up to ``limit`` items; stops at the end or at the first malformed one."""
    found: list[object] = []
    for _ in range(limit):
        try:
            found.append(decoder.decode())
        except (cbor2.CBORDecodeError, ValueError, OverflowError, RecursionError):
            break
    return found


def batch_of(data: bytes) -> list[object]:
    """The batch an input describes (see the module docstring)."""
    if not data:
        return []
    if not data[0] & FLAG_NAMED:
        return _items(_decoder(data[1:]), MAX_COMMANDS)
    batch: list[object] = []
    at = 1
    while at + 2 <= len(data) and len(batch) < MAX_COMMANDS:
        spec = COMMANDS[data[at] % len(COMMANDS)]
        count = data[at + 1] % (MAX_ARGS + 1)
        decoder = _decoder(data[at + 2 :])
        batch.append([*spec.name.split(), *_items(decoder, count)])
        at += 2 + decoder.fp.tell()
    return batch


def _check_replies(blob: bytes, batch: list[object], session: Session) -> None:
    decoder = FrameDecoder()
    replies = decoder.feed(blob)
    assert decoder.buffered == 0, "a reply frame was cut short"
    for item in replies:
        decode_message(item)
    if session.closing is None:
        assert len(replies) == len(batch), (len(replies), len(batch))
    else:
        assert 1 <= len(replies) <= len(batch) or not batch


def _check_keyspace(keyspace: Keyspace) -> None:
    for key, value in keyspace.data.items():
        assert type(key) in (str, bytes), key
        if type(value) in (KvList, KvHash):
            assert value, f"an empty {type(value).__name__} was left at {key!r}"
    assert set(keyspace.expires) <= set(keyspace.data)


def dump(keyspace: Keyspace) -> bytes:
    """The live keys, their types, values and deadlines, as canonical CBOR.

    CBOR and not repr: repr of an int of more than 4300 digits raises, and NaN
    encodes equal to itself.
    """
    found = []
    for key in sorted(keyspace.data, key=lambda k: (type(k) is bytes, k)):
        value = keyspace.peek(key)
        if value is MISSING:
            continue
        plain = list(value) if type(value) is KvList else dict(value) if type(value) is KvHash else value
        found.append([key, type(value).__name__, plain, keyspace.deadline(key)])
    return cbor2.dumps(found, canonical=True)


def _replay(log: _Log) -> bytes | None:
    """Start-up's replay of the logged records on a fresh keyspace; None if one cannot be logged."""
    lines = [encode_header(0)]
    for timestamp_ms, argv in log.records:
        try:
            lines.append(encode_record(timestamp_ms, argv))
        except (TypeError, ValueError):
            return None  # the server answers MISCONF until a save (kv_server._aof.log)
    reader = AofReader()
    records = reader.feed(b"".join(lines))
    reader.finish(allow_torn=False)
    assert len(records) == len(log.records)
    _reset(REPLAYED)
    replay = _Replay(REPLAYED, 0)
    keyspace = REPLAYED.keyspace
    for record in records:
        keyspace.clock = _At(record.timestamp_ms)  # as start-up does (_recovery rule 2)
        replay._apply(Path("fuzz.aof"), record)
    keyspace.clock = _At(NOW_MS)
    return dump(keyspace)


def _run(session: Session, items: list[object]) -> bytes:
    """The batch's replies as its connection would send them, each blocking command
    that blocks timing out at once (a null reply) before the rest runs."""
    dispatcher = LIVE.dispatcher
    out = dispatcher.execute_batch(session, items)
    while session.pending or session.blocked is not None:
        if session.blocked is not None:
            LIVE.blocking.release(session.blocked)
            session.blocked = None
            out += encode_reply(None)
        rest, session.pending = session.pending, []
        out += dispatcher.execute_batch(session, rest)
    return out


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris's name)
    session = _reset(LIVE)
    log = _Log()
    LIVE.dispatcher.aof = log  # type: ignore[assignment]
    try:
        _run(session, SETUP)
        batch = batch_of(data)
        blob = _run(session, batch)
    finally:
        LIVE.dispatcher.aof = None
    _check_replies(blob, batch, session)
    _check_keyspace(LIVE.keyspace)
    replayed = _replay(log)
    if replayed is not None:
        assert replayed == dump(LIVE.keyspace), "replaying the logged records gave another keyspace"


if __name__ == "__main__":
    fuzz_main(TestOneInput)
