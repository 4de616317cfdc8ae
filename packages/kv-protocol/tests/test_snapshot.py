import io
import time
import tracemalloc
from typing import Any

import cbor2
import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_protocol.records import _snapshot_format as _format
from kv_protocol.records import tagged
from kv_protocol.records.snapshot import (
    SnapshotEntry,
    SnapshotFormatError,
    SnapshotHeader,
    SnapshotReader,
    SnapshotWriter,
    detect_encoding,
)
from test_tagged import identical, values

ENCODINGS = ["plaintext", "binary"]
CREATED_MS = 1_700_000_000_123
fields = st.text(max_size=6) | st.binary(max_size=6)
deadlines = st.none() | st.integers(0, 2**62)
entries = st.one_of(
    st.tuples(fields, st.just("string"), values, deadlines),
    st.tuples(fields, st.just("list"), st.lists(values, max_size=4), deadlines),
    st.tuples(fields, st.just("hash"), st.dictionaries(fields, values, max_size=4), deadlines),
)
SAMPLE: list[tuple[Any, ...]] = [
    ("k1", "string", "v1", None),
    (b"k\n2", "list", [1, 2.5, b"x", None], 1_700_000_000_000),
    ("k3", "hash", {"f": {"$x": [True]}, b"g": 2**70}, None),
]


def write(items: list[tuple[Any, ...]], encoding: str, batch: bool = False, position: int = 9) -> bytes:
    writer = SnapshotWriter(encoding, len(items), position, CREATED_MS)
    head = writer.header()
    body = writer.entries(items) if batch else b"".join(writer.entry(*item) for item in items)
    return head + body + writer.trailer()


def read(data: bytes, cuts: list[int] | None = None) -> tuple[list[SnapshotEntry], SnapshotHeader]:
    reader = SnapshotReader()
    got: list[SnapshotEntry] = []
    points = sorted(cuts or [])
    for begin, stop in zip([0, *points], [*points, len(data)], strict=True):
        got += reader.feed(data[begin:stop])
    return got, reader.finish()


def fails(data: bytes) -> SnapshotFormatError:
    with pytest.raises(SnapshotFormatError) as info:
        read(data)
    return info.value


def plaintext(lines: list[bytes], trailer_count: int | None = None) -> bytes:
    """A plaintext file from raw lines (header first), with a correct trailer."""
    body = b"".join(line + b"\n" for line in lines)
    count = len(lines) - 1 if trailer_count is None else trailer_count
    return body + b'{"end":"kv-snapshot","entries":%d,"crc32c":"%08x"}\n' % (count, crc32c.crc32c(body))


def binary(items: list[bytes], trailer_count: int | None = None) -> bytes:
    """A binary file from raw CBOR items (header first), with a correct trailer."""
    body = b"\xd9\xd9\xf7" + b"".join(items)
    count = len(items) - 1 if trailer_count is None else trailer_count
    return body + cbor2.dumps({"end": "kv-snapshot", "entries": count, "crc32c": crc32c.crc32c(body)})


def header_fields(encoding: str, entries: int, /, **changes: object) -> dict[str, object]:
    fields: dict[str, object] = {"format": "kv-snapshot", "version": 1, "encoding": encoding,
                                 "entries": entries, "aof_position": 0, "created_ms": 0}
    fields.update(changes)
    return {name: value for name, value in fields.items() if value is not None}


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(items=st.lists(entries, max_size=6), data=st.data())
def test_round_trip_in_any_chunks(encoding: str, items: list[tuple[Any, ...]], data: st.DataObject) -> None:
    stream = write(items, encoding)
    assert write(items, encoding, batch=True) == stream
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    got, header = read(stream, cuts)
    assert header == SnapshotHeader(encoding, 1, len(items), 9, CREATED_MS)
    assert identical([list(entry) for entry in got], [list(item) for item in items])
    assert all(type(entry) is SnapshotEntry for entry in got)


def test_plaintext_layout() -> None:
    data = write(SAMPLE[:1], "plaintext")
    lines = data.split(b"\n")
    assert lines[0] == (b'{"format":"kv-snapshot","version":1,"encoding":"plaintext","entries":1,'
                        b'"aof_position":9,"created_ms":1700000000123}')
    assert lines[1] == b'["k1","string","v1",null]'
    crc = crc32c.crc32c(lines[0] + b"\n" + lines[1] + b"\n")
    assert lines[2:] == [b'{"end":"kv-snapshot","entries":1,"crc32c":"%08x"}' % crc, b""]


def test_binary_layout() -> None:
    data = write(SAMPLE[:1], "binary")
    decoder = cbor2.CBORDecoder(io.BytesIO(data[3:]))
    header, entry = decoder.decode(), decoder.decode()
    trailer_offset = 3 + decoder.fp.tell()
    trailer = decoder.decode()
    assert data[:3] == b"\xd9\xd9\xf7"
    assert list(header) == ["format", "version", "encoding", "entries", "aof_position", "created_ms"]
    assert header["encoding"] == "binary" and entry == ["k1", "string", "v1", None]
    assert trailer == {"end": "kv-snapshot", "entries": 1, "crc32c": crc32c.crc32c(data[:trailer_offset])}


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_truncation_is_an_error(encoding: str) -> None:
    data = write(SAMPLE, encoding)
    for cut in range(len(data)):
        error = fails(data[:cut])
        assert "truncated" in error.reason or "not a kv snapshot" in error.reason, (cut, error)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_bit_flip_is_an_error(encoding: str) -> None:
    data = write(SAMPLE, encoding)
    for index in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[index] ^= 1 << bit
            with pytest.raises(SnapshotFormatError):
                read(bytes(damaged), [index])


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(items=st.lists(entries, min_size=1, max_size=4), data=st.data())
def test_damage_anywhere_is_an_error(
    encoding: str, items: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    stream = write(items, encoding)
    index = data.draw(st.integers(0, len(stream) - 1))
    damaged = bytearray(stream)
    damaged[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SnapshotFormatError):
        read(bytes(damaged), data.draw(st.lists(st.integers(0, len(stream)), max_size=3)))
    with pytest.raises(SnapshotFormatError):
        read(stream[: data.draw(st.integers(0, len(stream) - 1))])


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"version": 2, "encoding": "zstd"}, "unsupported format version 2"),
        ({"version": "1"}, "version must be an integer"),
        ({"format": "kv-snap"}, "not a kv snapshot"),
        ({"created_ms": None}, "header: missing field 'created_ms'"),
        ({"extra": 1}, "header: unexpected field 'extra'"),
        ({"entries": -1}, "entries must be a non-negative integer"),
        ({"aof_position": 1.5}, "aof_position must be a non-negative integer"),
        ({"created_ms": True}, "created_ms must be a non-negative integer"),
    ],
)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_header_errors(encoding: str, changes: dict[str, object], reason: str) -> None:
    fields = header_fields(encoding, 0, **changes)
    if encoding == "plaintext":
        error = fails(plaintext([tagged.dumps(fields).encode()]))
        assert error.line == 1
    else:
        error = fails(binary([cbor2.dumps(fields)]))
        assert error.line is None and error.entry is None
    assert error.offset == (0 if encoding == "plaintext" else 3) and reason in error.reason


def test_header_encoding_must_match_the_file() -> None:
    assert "encoding 'binary' in a plaintext file" in fails(
        plaintext([tagged.dumps(header_fields("binary", 0)).encode()])).reason
    binary_file = binary([cbor2.dumps(header_fields("plaintext", 0))])
    assert "encoding 'plaintext' in a binary file" in fails(binary_file).reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"\xd9\xd9", "too short"),
        (b"hello", "not a kv snapshot: it starts with b'hello'"),
        (b"\xd9\xd9\xf6", "not a kv snapshot"),
        (b"[1]\n", "not a kv snapshot"),
        (b"{" + b" " * 5000, "no newline in 4096 bytes"),
        (b'{"format":"kv-snapshot"\n', "the header is not valid JSON"),
        (b"\xd9\xd9\xf7\x84", "truncated: the file ends inside the header"),
    ],
)
def test_not_a_snapshot(data: bytes, reason: str) -> None:
    assert reason in fails(data).reason


def test_detect_encoding() -> None:
    assert detect_encoding(write([], "plaintext")) == "plaintext"
    assert detect_encoding(write([], "binary")) == "binary"
    assert [detect_encoding(prefix) for prefix in (b"", b"\xd9\xd9", b"x")] == [None, None, None]


def test_count_mismatches() -> None:
    head = tagged.dumps(header_fields("plaintext", 1)).encode()
    entry = b'["k","string",1,null]'
    error = fails(plaintext([head, entry, entry]))
    assert (error.line, error.entry, error.reason) == (3, 2, "more entries than the 1 the header declares")
    assert str(error).startswith("line 3, byte offset ")
    error = fails(plaintext([head], trailer_count=1))
    assert "the header declares 1 entries; the trailer follows 0" in error.reason and error.line == 2
    error = fails(plaintext([head, entry], trailer_count=0))
    assert "the trailer counts 0 entries, the header 1" in error.reason
    bhead, bentry = cbor2.dumps(header_fields("binary", 1)), cbor2.dumps(["k", "string", 1, None])
    error = fails(binary([bhead, bentry, bentry]))
    offset = 3 + len(bhead) + len(bentry)
    assert str(error) == f"entry 2, byte offset {offset}: more entries than the 1 the header declares"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("garbage", [b"\n", b"x", b"\x00" * 3, b'["k","string",1,null]\n'])
def test_data_after_the_trailer(encoding: str, garbage: bytes) -> None:
    data = write(SAMPLE, encoding)
    assert "data after the trailer" in fails(data + garbage).reason
    reader = SnapshotReader()
    reader.feed(data)
    with pytest.raises(SnapshotFormatError, match="data after the trailer"):
        reader.feed(garbage)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (["k", "string", 1], "an entry is an array [key, kind, value, deadline_ms]"),
        ([1, "string", 1, None], "key must be text or bytes, not int"),
        (["k", "set", [1], None], "unknown kind 'set'"),
        (["k", "list", "abc", None], "a list's value must be an array, not text"),
        (["k", "hash", [1], None], "a hash's value must be a map, not list"),
        (["k", "hash", {1: 2}, None], "hash fields must be text or bytes, not int"),
        (["k", "string", 1, 1.5], "deadline_ms must be an integer or null, not float"),
        (["k", "string", 1, True], "deadline_ms must be an integer or null, not bool"),
    ],
)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_entry_shape_errors(encoding: str, entry: list[object], reason: str) -> None:
    if encoding == "plaintext":
        data = plaintext([tagged.dumps(header_fields(encoding, 1)).encode(), tagged.dumps(entry).encode()])
    else:
        data = binary([cbor2.dumps(header_fields(encoding, 1)), cbor2.dumps(entry)])
    error = fails(data)
    assert reason in error.reason and error.entry == 1
    assert error.line == (2 if encoding == "plaintext" else None)


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (cbor2.dumps(["k", "string", cbor2.CBORTag(1, 0), None]), "only the bignum tags"),
        (b"\x84akfstring\xf7\xf6", "not a kv value"),  # undefined
        (b"\x84akfstring\xa1\x82\x01\x02\x01\xf6", "not a kv value"),  # an array as a map key
        (b"\x84akfstring\xa2\x01\x01\x01\x02\xf6", "Duplicate map key"),
        (b"\x84akfstring" + b"\x81" * 64 + b"\x00\xf6", "nesting depth"),
        (cbor2.dumps("k"), "expected an entry (an array) or the trailer (a map), not text"),
        (b"\x84akfstring\x1c\xf6", "malformed CBOR"),
    ],
)
def test_binary_items_get_the_frame_decoders_checks(item: bytes, reason: str) -> None:
    error = fails(binary([cbor2.dumps(header_fields("binary", 1)), item]))
    assert reason in error.reason


def test_plaintext_line_errors() -> None:
    head = tagged.dumps(header_fields("plaintext", 1)).encode()
    assert "not valid tagged JSON" in fails(plaintext([head, b'["k","string",{"$bytes":"A"},null]'])).reason
    assert "expected an entry (an array) or the trailer" in fails(plaintext([head, b"k string 1"])).reason
    assert "not valid JSON" in fails(plaintext([head]).replace(b'"end"', b"end")).reason


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_checksum_mismatch(encoding: str) -> None:
    data = bytearray(write(SAMPLE, encoding))
    index = data.index(b"v1")
    data[index : index + 2] = b"v2"
    error = fails(bytes(data))
    assert "checksum mismatch (stored " in error.reason and error.entry is None


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_writer_refuses_what_a_reader_would(encoding: str) -> None:
    writer = SnapshotWriter(encoding, 1, 0, 0)
    with pytest.raises(ValueError, match="header comes first"):
        writer.entry("k", "string", 1, None)
    writer.header()
    with pytest.raises(ValueError, match="already written"):
        writer.header()
    with pytest.raises(ValueError, match="0 entries written but the header declared 1"):
        writer.trailer()
    for bad in [(1, "string", 1, None), ("k", "set", 1, None), ("k", "list", (1,), None),
                ("k", "hash", {1: 1}, None), ("k", "string", 1, True)]:
        with pytest.raises(ValueError):
            writer.entry(*bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError if encoding == "plaintext" else ValueError):
        writer.entry("k", "string", {1, 2}, None)  # type: ignore[arg-type]
    writer.entry("k", "string", 1, None)
    with pytest.raises(ValueError, match="more entries than the 1"):
        writer.entry("k", "string", 1, None)
    with pytest.raises(ValueError, match="more entries than the 1"):
        writer.entries([("k", "string", 1, None)])
    assert writer.entries([]) == b""
    with pytest.raises(ValueError):
        SnapshotWriter("json", 0, 0, 0)
    with pytest.raises(ValueError):
        SnapshotWriter(encoding, -1, 0, 0)


@given(items=st.lists(entries, max_size=4), data=st.data())
def test_following_headers_gives_the_same_entries(items: list[tuple[Any, ...]], data: st.DataObject) -> None:
    stream = write(items, "binary")
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_format, "SCAN_BYTES", 1)  # every unfinished item is followed by item_end
        got, _ = read(stream, cuts)
        damaged = bytearray(stream)
        damaged[data.draw(st.integers(0, len(stream) - 1))] ^= data.draw(st.integers(1, 255))
        with pytest.raises(SnapshotFormatError):
            read(bytes(damaged), cuts)
    assert identical([list(entry) for entry in got], [list(item) for item in items])


# Indefinite-length array, text, map and bytes, and a bignum (a tagged item).
INDEFINITE = [b"\x9f\x01\x9f\xff\xff", b"\x7f\x61a\x61b\xff", b"\xbf\x61a\x01\xff", b"\x5f\x41a\xff",
              b"\xc2\x41\x01"]


@given(st.lists(values, min_size=1, max_size=3).map(cbor2.dumps) | st.sampled_from(INDEFINITE), st.data())
def test_item_end_finds_where_an_item_ends(item: bytes, data: st.DataObject) -> None:
    view = memoryview(item + b"\x00")
    for stop in range(len(item)):
        assert _format.item_end(view, 0, stop, []) [1] is False
    assert _format.item_end(view, 0, len(view), []) == (len(item), True)
    stack: list[int] = []
    at = 0
    for stop in sorted(data.draw(st.lists(st.integers(0, len(item) - 1), max_size=5))):
        at, done = _format.item_end(view, at, stop, stack)
        assert not done and at <= stop
    assert _format.item_end(view, at, len(view), stack) == (len(item), True)


@pytest.mark.parametrize("item", [b"\x1c", b"\xff", b"\x81\xff", b"\x9f" * 70, b"\xdf"])
def test_item_end_leaves_malformed_bytes_to_the_decoder(item: bytes) -> None:
    assert _format.item_end(memoryview(item), 0, len(item), [])[1] is True


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_large_entry_in_small_chunks_costs_linear_time(encoding: str) -> None:
    fields = {f"field:{number:06d}": number for number in range(200_000)}  # about 4 MB
    data = write([("big", "hash", fields, None), ("small", "string", 1, None)], encoding)
    started = time.perf_counter()
    got, _ = read(data, list(range(4096, len(data), 4096)))
    assert time.perf_counter() - started < 5  # decoding it again per chunk would take minutes
    assert [entry.key for entry in got] == ["big", "small"] and got[0].value == fields


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_memory_holds_a_chunk_not_the_file(encoding: str) -> None:
    items = [(f"key:{number:06d}", "string", "x" * 50, None) for number in range(50_000)]
    data = write(items, encoding)  # about 4 MB
    reader = SnapshotReader()
    tracemalloc.start()
    try:
        for index in range(0, len(data), 64 * 1024):
            reader.feed(data[index : index + 64 * 1024])  # entries dropped at once
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    reader.finish()
    assert peak < 1_000_000 < len(data)
