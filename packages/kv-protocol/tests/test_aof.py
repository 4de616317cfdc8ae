import dataclasses
import pickle

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_protocol.records import aof
from kv_protocol.records.aof import (
    AofEnd,
    AofFormatError,
    AofReader,
    AofRecord,
    EmptyAofError,
    encode_header,
    encode_record,
)
from test_tagged import identical, values

COMMANDS = [
    ["SET", "key:000123", "xyz"],
    ["HSET", "h", "f", 1, b"g", {"a": [1.5, None]}],
    ["RPUSH", "l", "é\n", 2**70, float("nan")],
    ["DEL", b"\x00\n\xff"],
]


def build(commands: list[list[object]], start: int = 0) -> tuple[bytes, list[int]]:
    """A file holding ``commands``, and the byte offset of every line (the header's is 0)."""
    data = encode_header(start)
    offsets = [0]
    for number, argv in enumerate(commands):
        offsets.append(len(data))
        data += encode_record(1_700_000_000_000 + number, argv)
    return data, offsets


def read_all(data: bytes, chunk: int = 1 << 16) -> tuple[list[AofRecord], AofEnd]:
    reader = AofReader()
    records: list[AofRecord] = []
    for index in range(0, len(data), chunk):
        records += reader.feed(data[index : index + chunk])
    return records, reader.finish()


def first_error(data: bytes) -> tuple[list[AofRecord], AofFormatError]:
    """The records a reader returns before it raises, and the error."""
    reader = AofReader()
    try:
        records = reader.feed(data)
    except AofFormatError as error:
        return [], error
    with pytest.raises(AofFormatError) as info:
        reader.finish()
    return records, info.value


def test_record_layout_and_checksum() -> None:
    assert encode_header(1234) == b"kv-aof 1 1234\n"
    record = encode_record(1700000000000, ["SET", "key:000123", "xyz"])
    stamp, crc, command = record.rstrip(b"\n").split(b" ", 2)
    assert (stamp, command) == (b"1700000000000", b'["SET","key:000123","xyz"]')
    assert crc == b"%08x" % crc32c.crc32c(b'1700000000000 ["SET","key:000123","xyz"]')


@given(
    st.lists(st.tuples(st.integers(0, 2**60), st.lists(values, max_size=3)), max_size=6),
    st.integers(0, 2**40),
    st.data(),
)
def test_round_trip_in_any_chunks(
    entries: list[tuple[int, list[object]]], start: int, data: st.DataObject
) -> None:
    header = encode_header(start)
    lines = [encode_record(stamp, ["CMD", *args]) for stamp, args in entries]
    stream = header + b"".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = AofReader()
    records: list[AofRecord] = []
    for begin, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        records += reader.feed(stream[begin:stop])
    end = reader.finish(allow_torn=False)
    assert len(records) == len(entries) == end.records == reader.records
    offset = len(header)
    for number, (record, (stamp, args), line) in enumerate(zip(records, entries, lines, strict=True)):
        assert (record.line, record.offset, record.end) == (number + 2, offset, offset + len(line))
        base = start - len(header)
        assert (record.position, record.end_position) == (base + offset, base + record.end)
        assert record.timestamp_ms == stamp and identical(record.argv, ["CMD", *args])
        offset = record.end
    assert end == AofEnd(start, len(entries), len(stream), start + len(stream) - len(header), False, 0)
    assert reader.end_position == end.end_position and reader.good_end == len(stream)


def test_truncation_anywhere_in_the_last_record_is_torn_and_loses_nothing_else() -> None:
    data, offsets = build(COMMANDS, start=500)
    last = offsets[-1]
    for cut in range(last, len(data) + 1):
        records, end = read_all(data[:cut], chunk=7)
        assert [r.argv[0] for r in records] == [c[0] for c in COMMANDS[: len(records)]]
        complete = cut == len(data)
        assert len(records) == len(COMMANDS) - (not complete)
        assert end.torn == (last < cut < len(data)) and end.tail_bytes == cut - end.good_end
        assert end.good_end == (len(data) if complete else last)
        if end.torn:
            reader = AofReader()
            reader.feed(data[:cut])
            with pytest.raises(AofFormatError, match="torn last record") as info:
                reader.finish(allow_torn=False)
            assert info.value.torn and (info.value.line, info.value.offset) == (len(COMMANDS) + 1, last)


def test_every_bit_flip_in_a_record_is_caught_at_its_line() -> None:
    data, offsets = build(COMMANDS)
    target = 2  # the second record (line 3); a record follows it
    begin, stop = offsets[target], offsets[target + 1]
    for index in range(begin, stop):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[index] ^= 1 << bit
            records, error = first_error(bytes(damaged))
            assert len(records) == target - 1
            assert (error.line, error.offset, error.torn) == (target + 1, begin, False), (index, bit, error)


def test_a_bad_last_line_is_corruption_not_a_torn_tail() -> None:
    data, offsets = build(COMMANDS)
    damaged = data[:-5] + b"X" + data[-4:]
    records, error = first_error(damaged)
    assert len(records) == len(COMMANDS) - 1 and not error.torn
    where = f"line {len(COMMANDS) + 1}, byte offset {offsets[-1]}"
    assert str(error).startswith(f"{where}: checksum mismatch (stored ")


def line_with_crc(stamp: bytes, command: bytes) -> bytes:
    return b"%s %08x %s\n" % (stamp, crc32c.crc32c(stamp + b" " + command), command)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\n", "not a record"),
        (b"hello\n", "not a record"),
        (b"\0\0\0\0 1\n", "NUL bytes"),
        (b"12 abc\n", "not a record"),
        (b"12x 00000000 []\n", "bad timestamp"),
        (b"123456789012345678901 00000000 []\n", "bad timestamp"),
        (b"12 0000000 []\n", "bad checksum field"),
        (b"12 0000000G [1]\n", "bad checksum field"),
        (line_with_crc(b"12", b'["SET"]').upper(), "bad checksum field"),
        (b"12 00000000 [\"SET\"]\n", "checksum mismatch"),
        (line_with_crc(b"12", b'["SET",\xff]'), "not valid tagged JSON: not UTF-8"),
        (line_with_crc(b"12", b'{"$x":1}'), "unknown tag"),
        (line_with_crc(b"12", b'"SET"'), "non-empty array"),
        (line_with_crc(b"12", b"[]"), "non-empty array"),
        (line_with_crc(b"12", b'[1,"SET"]'), "non-empty array"),
    ],
)
def test_garbage_lines(line: bytes, reason: str) -> None:
    data, _ = build(COMMANDS[:1])
    records, error = first_error(data + line + encode_record(1, ["PING"]))
    assert len(records) == 1 and reason in error.reason
    assert (error.line, error.offset, error.torn) == (3, len(data), False)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"kv-aof 2 0\n", "unsupported format version 2"),
        (b"kv-aof 1\n", "not a kv append-only file"),
        (b"kv-aof 1 -5\n", "start b'-5' is not"),
        (b"kv-aof x 0\n", "version b'x' is not"),
        (b"kv-aof 1 0 0\n", "not a kv append-only file"),
        (b"kv-aof 1 " + b"1" * 60 + b"\n", "not a kv append-only file"),
        (b"kv-aof 1 " + b"1" * 60, "no newline in the first 64 bytes"),
        (b"hello", "not a kv append-only file: it starts with b'hello'"),
        (b"\x00\x00", "not a kv append-only file"),
        (b"kv-aof 1 1", "torn header"),
        (b"kv-ao", "torn header"),
    ],
)
def test_header_errors(data: bytes, reason: str) -> None:
    _, error = first_error(data)
    assert reason in error.reason and (error.line, error.offset) == (1, 0)
    assert error.torn == ("torn" in reason)


def test_an_empty_file_is_its_own_case() -> None:
    with pytest.raises(EmptyAofError, match="empty file") as info:
        AofReader().finish()
    assert info.value.torn and isinstance(info.value, AofFormatError)


def test_a_header_alone_is_an_empty_log() -> None:
    assert AofReader().feed(b"kv-aof 1 77\n") == []
    reader = AofReader()
    reader.feed(b"kv-aof 1 77\n")
    assert reader.finish() == AofEnd(77, 0, 12, 77, False, 0)


def test_a_long_line_without_newline_fails_once_over_the_limit() -> None:
    reader = AofReader(max_line_bytes=100)
    reader.feed(b"kv-aof 1 0\n" + b"x" * 60)
    with pytest.raises(AofFormatError, match="no newline within 100 bytes") as info:
        reader.feed(b"x" * 41)
    assert (info.value.line, info.value.offset, info.value.torn) == (2, 11, False)
    with pytest.raises(AofFormatError, match="exceeds the limit"):
        AofReader(max_line_bytes=30).feed(encode_header(0) + encode_record(1, ["SET", "k", "v" * 30]))


def test_encode_record_refuses_what_the_reader_would(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aof, "MAX_LINE_BYTES", 40)
    encode_record(1, ["SET", "k", "v" * 10])
    with pytest.raises(ValueError, match="exceeds the limit of 40"):
        encode_record(1, ["SET", "k", "v" * 20])


@pytest.mark.parametrize(
    ("stamp", "argv", "error"),
    [
        (-1, ["PING"], ValueError),
        (True, ["PING"], ValueError),
        (10**20, ["PING"], ValueError),
        (1, [], ValueError),
        (1, [b"PING"], ValueError),
        (1, ["SADD", {1, 2}], TypeError),
    ],
)
def test_encode_record_checks_its_arguments(stamp: int, argv: list[object], error: type[Exception]) -> None:
    with pytest.raises(error):
        encode_record(stamp, argv)


def test_nul_bytes_at_the_end_are_torn_and_before_data_are_corrupt() -> None:
    data, _ = build(COMMANDS)
    _, end = read_all(data + b"\0" * 4096, chunk=1000)
    assert end.torn and end.tail_bytes == 4096 and end.good_end == len(data)
    reader = AofReader()
    reader.feed(data + b"\0" * 10)
    with pytest.raises(AofFormatError, match=r"\(all NUL\)"):
        reader.finish(allow_torn=False)
    records, error = first_error(data + b"\0" * 10 + b"\n")
    assert len(records) == len(COMMANDS) and "NUL bytes" in error.reason


def test_after_an_error_the_reader_stays_broken() -> None:
    data, offsets = build(COMMANDS)
    damaged = data[: offsets[2]] + b"garbage\n" + data[offsets[2] :]
    reader = AofReader()
    records = reader.feed(damaged)  # the good record comes first ...
    assert len(records) == 1 and reader.records == 1 and reader.good_end == offsets[2]
    with pytest.raises(AofFormatError) as info:  # ... and the error with the next call
        reader.feed(b"")
    with pytest.raises(AofFormatError) as again:
        reader.feed(encode_record(1, ["PING"]))
    with pytest.raises(AofFormatError) as last:
        reader.finish()
    assert info.value is again.value is last.value and info.value.line == 3


def test_errors_pickle_and_records_are_frozen() -> None:
    error = AofFormatError("checksum mismatch", 7, 412)
    assert str(error) == "line 7, byte offset 412: checksum mismatch"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.line, copy.offset, copy.torn) == (str(error), 7, 412, False)
    record = aof._new_record(2, 3, 4, 5, 6, 7, ["PING"])
    assert record == AofRecord(2, 3, 4, 5, 6, 7, ["PING"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.line = 3  # type: ignore[misc]

