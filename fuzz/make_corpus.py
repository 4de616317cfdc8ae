"""Write the seed corpora in fuzz/corpus/<target>/ from the codecs themselves.

Seeds are valid inputs laid out as each harness reads them (fuzz/harness.py rule
2): whole frames, a handshake transcript, one call of every command, an AOF and
both snapshot encodings. A fuzzer that starts from valid inputs mutates its way
past the first checks at once instead of rediscovering the formats. Everything is
deterministic (fixed nonces, salt and times), so running this again rewrites the
same files; tests-integration/test_fuzz_smoke.py checks that the committed corpus
is what this script writes.

Run: ``python fuzz/make_corpus.py`` (add ``--check`` to compare only).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from typing import Any, Final

import cbor2
import fuzz_dispatch
import fuzz_files
import fuzz_handshake
from harness import CORPUS_DIR, FUZZ_DIR, join

from kv_protocol.commands import COMMANDS, ArgKind
from kv_protocol.framing import encode_frame
from kv_protocol.records.aof import encode_header, encode_record
from kv_protocol.records.snapshot import SnapshotWriter

TIME_MS: Final = 1_700_000_000_000
DICTIONARY: Final = FUZZ_DIR / "dispatch.dict"
COMMAND_FRAMES: Final = [
    encode_frame(["SET", "k", 1]), encode_frame(["GET", "k"]),
    encode_frame(["RPUSH", "l", "a", b"b", 2.5, None, [1, {"x": True}]]),
    encode_frame(["HSET", "h", b"f", 2**70, "g", -(2**64)]),
    encode_frame(["SET", "k", "v", "EX", 10, "NX"]), encode_frame(["PING"]),
]
# One typical argument per kind, for a call of every command that passes the checks.
ARGUMENTS: Final[dict[ArgKind, object]] = {
    ArgKind.KEY: "l", ArgKind.VALUE: "v", ArgKind.STRING: "f", ArgKind.TEXT: "x",
    ArgKind.INTEGER: 1, ArgKind.NUMBER: 1.5, ArgKind.PATTERN: "*",
}


def frames() -> Iterator[bytes]:
    pipeline = b"".join(COMMAND_FRAMES)
    yield join(0, [pipeline])
    yield join(0, [pipeline[:3], pipeline[3:10], pipeline[10:]])  # a header split apart
    yield join(0, [fuzz_handshake.HELLO])
    yield join(0x08, [encode_frame(["SET", "k", "x" * 300])])  # over the small limit
    yield join(0x10, [encode_frame([[[[["deep"]]]]])])  # over the small depth
    yield join(0, [encode_frame({"map": {b"bytes": [1.0, float("inf"), False]}})])


def handshake() -> Iterator[bytes]:
    h = fuzz_handshake
    commands = b"".join(COMMAND_FRAMES[:3])
    replies = encode_frame([0, "OK"]) + encode_frame([1, "ERR", "no"]) + encode_frame([2, "message", "c", 1])
    payloads = {
        h.Mode.SERVER_FRESH: [h.HELLO, h.PROOF + commands],
        h.Mode.SERVER_DURING_HELLO: [h.PROOF + commands],
        h.Mode.SERVER_DURING_PROOF: [commands],
        h.Mode.SERVER_READY: [commands[:5], commands[5:]],
        h.Mode.CLIENT_FRESH: [h.CHALLENGE, h.WELCOME + replies],
        h.Mode.CLIENT_DURING_CHALLENGE: [h.WELCOME + replies],
        h.Mode.CLIENT_DURING_WELCOME: [replies],
        h.Mode.CLIENT_READY: [replies[:7], replies[7:]],
    }
    for mode, chunks in payloads.items():
        yield join(mode << 3, chunks)
    yield join(h.Mode.SERVER_FRESH << 3, [encode_frame(["GET", "k"])])  # NOAUTH
    yield join(h.Mode.CLIENT_FRESH << 3, [encode_frame([1, "WRONGPASS", "no"])])


def _call(spec: Any) -> list[object]:
    args: list[object] = []
    for arg in spec.positional[: spec.min_args]:
        if arg.kind is ArgKind.TOKEN:
            args.append(arg.name)
        elif arg.kind is ArgKind.CHOICE:
            args.append(arg.choices[0])
        else:
            args.append(ARGUMENTS[arg.kind])
    return args


def dispatch() -> Iterator[bytes]:
    for index, spec in enumerate(COMMANDS):
        args = _call(spec)
        yield bytes([fuzz_dispatch.FLAG_NAMED, index, len(args)]) + b"".join(cbor2.dumps(a) for a in args)
    yield b"\x00" + b"".join(cbor2.dumps(c) for c in (
        ["SET", "k", 1, "PX", 100], ["INCRBY", "n", 5], ["LPUSH", "l", 0], ["LRANGE", "l", 0, -1],
        ["HINCRBYFLOAT", "h", "f", 0.5], ["EXPIRE", "s", 10], ["MULTI"], 42, ["GET", "k"]))


def _aof(start: int) -> bytes:
    commands: list[list[object]] = [
        ["SET", "k", 1], ["RPUSH", "l", "a", b"b"], ["HSET", "h", "f", 1.5],
        ["PEXPIREAT", "k", TIME_MS + 10_000], ["DEL", "gone"]]
    records = [encode_record(TIME_MS + i, argv) for i, argv in enumerate(commands)]
    return encode_header(start) + b"".join(records)


def _snapshot(encoding: str, position: int, entries: int = 3) -> bytes:
    items: list[tuple[Any, Any, Any, int | None]] = [
        ("s", "string", 1, None), (b"l", "list", [1, "a"], TIME_MS + 5_000), ("h", "hash", {"f": b"v"}, None)
    ][:entries]
    writer = SnapshotWriter(encoding, len(items), position, TIME_MS)
    return writer.header() + writer.entries(items) + writer.trailer()


def files() -> Iterator[bytes]:
    m = fuzz_files.Mode
    aof = _aof(0)
    yield join(m.AOF << 3, [aof])
    yield join(m.AOF << 3, [aof[:5], aof[5:40], aof[40:-3], aof[-3:]])  # cut inside a record
    for encoding in ("plaintext", "binary"):
        snapshot = _snapshot(encoding, 0)
        yield join(m.SNAPSHOT << 3, [snapshot])
        yield join(m.SNAPSHOT << 3, [snapshot[:2], snapshot[2:100], snapshot[100:]])
        small = _snapshot(encoding, 40, 1)
        assert len(small) <= 255, "a start-up seed's snapshot must fit one cut byte"
        yield join(m.STARTUP << 3, [small, _aof(40)])
    yield join(m.STARTUP_AOF_ONLY << 3 | fuzz_files.FLAG_FIX_CRC, [aof])
    yield join(m.STARTUP_AOF_ONLY << 3 | fuzz_files.FLAG_ALLOW_TORN, [aof[:-3]])


def dispatch_words() -> list[str]:
    """Every command name, subcommand, option word and choice: tokens a mutator cannot guess."""
    words: set[str] = set()
    for spec in COMMANDS:
        words.update(spec.name.split())
        for arg in spec.args:
            words.update(option.word for option in arg.options)
            words.update(arg.choices)
            words.update(part.name for part in arg.flat if part.kind is ArgKind.TOKEN)
    return sorted(words)


def dictionary() -> bytes:
    """libFuzzer's -dict file for fuzz_dispatch: each word as a CBOR text item."""
    lines = ["# Written by make_corpus.py: command names and option words as CBOR text."]
    for word in dispatch_words():
        escaped = "".join(f"\\x{byte:02x}" for byte in cbor2.dumps(word))
        lines.append(f'"{escaped}"')
    return ("\n".join(lines) + "\n").encode()


TARGETS: Final = {"frames": frames, "handshake": handshake, "dispatch": dispatch, "files": files}


def seeds() -> dict[str, dict[str, bytes]]:
    """Every seed file, by target and name (``seed-<sha1 prefix>``, as libFuzzer names inputs)."""
    return {target: {f"seed-{hashlib.sha1(data).hexdigest()[:16]}": data for data in make()}
            for target, make in TARGETS.items()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for target, found in seeds().items():
        directory = CORPUS_DIR / target
        on_disk = {path.name: path.read_bytes() for path in directory.glob("seed-*")}
        if on_disk != found:
            stale.append(target)
            if not check:
                directory.mkdir(parents=True, exist_ok=True)
                for name in set(on_disk) - set(found):
                    (directory / name).unlink()
                for name, data in found.items():
                    (directory / name).write_bytes(data)
        print(f"{target}: {len(found)} seeds{' (stale)' if target in stale else ''}")
    path = DICTIONARY
    if not path.exists() or path.read_bytes() != dictionary():
        stale.append(path.name)
        if not check:
            path.write_bytes(dictionary())
        print(f"{path.name}: {len(dispatch_words())} words (stale)")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
