import contextlib
import datetime
import re
import struct
import tracemalloc
import uuid

import cbor2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kv_protocol.errors import LocalProtocolError, RemoteProtocolError
from kv_protocol.framing import DEFAULT_MAX_DEPTH, FrameDecoder, encode_frame
from protocol_helpers import same, values


def frame_of(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


@given(values)
def test_round_trip(value: object) -> None:
    assert same(FrameDecoder().feed(encode_frame(value)), [value])


@given(st.lists(values, max_size=8), st.data())
def test_split_anywhere_gives_the_same_items(items: list[object], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(v) for v in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    got: list[object] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += decoder.feed(stream[start:stop])
    assert same(got, items)
    assert decoder.buffered == 0


def test_partial_frame_waits_and_reports_buffered() -> None:
    frame = encode_frame(["SET", "k", b"x" * 100])
    decoder = FrameDecoder()
    assert decoder.feed(frame[:50]) == []
    assert decoder.buffered == 50
    assert decoder.feed(frame[50:]) == [["SET", "k", b"x" * 100]]


def test_oversized_length_fails_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame_size=1000)
    with pytest.raises(RemoteProtocolError, match="1001 bytes exceeds the limit of 1000"):
        decoder.feed(struct.pack(">I", 1001))


def test_http_request_is_rejected_at_once() -> None:
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        FrameDecoder().feed(b"GET / HTTP/1.1\r\n\r\n")


def test_frame_at_the_limit_is_accepted() -> None:
    body = cbor2.dumps(b"x" * 990)
    assert FrameDecoder(max_frame_size=len(body)).feed(frame_of(body)) == [b"x" * 990]


def test_empty_frame_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError, match="empty frame"):
        FrameDecoder().feed(frame_of(b"") + encode_frame(1))


@pytest.mark.parametrize(
    "body",
    [cbor2.dumps(1) + b"\x01", cbor2.dumps(["GET", "k"]) + cbor2.dumps("x")],
    ids=["trailing byte", "two items"],
)
def test_more_than_one_item_is_rejected(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="exactly one CBOR item"):
        FrameDecoder().feed(frame_of(body))


def test_item_running_past_its_frame_is_rejected() -> None:
    whole = cbor2.dumps(["SET", "k", "v"])
    # The frame claims fewer bytes than the item needs; the next frame's bytes follow.
    stream = frame_of(whole[:-2]) + whole[-2:] + encode_frame("next")
    with pytest.raises(RemoteProtocolError):
        FrameDecoder().feed(stream)


def nested(depth: int) -> bytes:
    return b"\x81" * depth + b"\x01"


def test_depth_limit_is_exact() -> None:
    assert FrameDecoder().feed(frame_of(nested(DEFAULT_MAX_DEPTH)))
    with pytest.raises(RemoteProtocolError, match="depth"):
        FrameDecoder().feed(frame_of(nested(DEFAULT_MAX_DEPTH + 1)))


def test_custom_depth_limit() -> None:
    assert FrameDecoder(max_depth=2).feed(frame_of(nested(2)))
    with pytest.raises(RemoteProtocolError):
        FrameDecoder(max_depth=2).feed(frame_of(nested(3)))


@pytest.mark.parametrize(
    "body",
    [
        cbor2.dumps(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)),
        cbor2.dumps({1, 2}),
        cbor2.dumps(re.compile("a+")),
        cbor2.dumps(uuid.uuid4()),
        cbor2.dumps(cbor2.CBORTag(39321, 1)),
        bytes.fromhex("d81c81d81d00"),  # a list that contains itself (shared reference)
        bytes.fromhex("d9d9f701"),  # self-described CBOR (tag 55799)
    ],
    ids=["datetime", "set", "regex", "uuid", "unknown tag", "cyclic", "self-describe"],
)
def test_semantic_tags_are_rejected(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="bignum"):
        FrameDecoder().feed(frame_of(body))


@pytest.mark.parametrize("number", [2**64, -(2**64) - 1, 2**300])
def test_bignums_are_allowed(number: int) -> None:
    assert FrameDecoder().feed(encode_frame(number)) == [number]


def test_duplicate_map_keys_are_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        FrameDecoder().feed(frame_of(b"\xa2\x61a\x01\x61a\x02"))


def test_invalid_utf8_text_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        FrameDecoder().feed(frame_of(b"\x62\xff\xfe"))


def test_broken_decoder_stays_broken() -> None:
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(frame_of(b"\xff"))
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode_frame("fine"))


@given(st.binary(max_size=200))
@example(b"\x00\x00\x00\x05\x9b\x00\x00\x00\x10")
@example(b"\x00\x00\x00\x09\x5b\x00\x00\x00\x10\x00\x00\x00\x00")
def test_arbitrary_bytes_decode_or_raise_remote_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        FrameDecoder(max_frame_size=1024).feed(data)


@given(values, st.data())
def test_mutated_frames_decode_or_raise_remote_protocol_error(value: object, data: st.DataObject) -> None:
    frame = bytearray(encode_frame(["SET", "k", value]))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(frame) - 1))
        frame[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(RemoteProtocolError):
        FrameDecoder(max_frame_size=4096).feed(bytes(frame))


@pytest.mark.parametrize(
    "head",
    [
        b"\x9b\x00\x00\x00\x10\x00\x00\x00\x00",  # array of 2**36 elements
        b"\x5b\x00\x00\x00\x10\x00\x00\x00\x00",  # byte string of 2**36 bytes
        b"\xbb\x00\x00\x00\x10\x00\x00\x00\x00",  # map of 2**36 pairs
    ],
    ids=["array", "bytes", "map"],
)
def test_huge_declared_sizes_do_not_allocate(head: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError):
            FrameDecoder().feed(frame_of(head + b"\x00" * 16))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_many_small_frames_with_a_partial_tail_compact_the_buffer() -> None:
    decoder = FrameDecoder()
    frames = b"".join(encode_frame(["GET", f"key:{i}"]) for i in range(10_000))
    tail = encode_frame(["SET", "last", b"x" * 10])
    items = decoder.feed(frames + tail[:5])
    assert len(items) == 10_000
    assert items[-1] == ["GET", "key:9999"]
    assert decoder.buffered == 5
    assert decoder.feed(tail[5:]) == [["SET", "last", b"x" * 10]]
    assert decoder.buffered == 0


def test_encode_frame_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(LocalProtocolError, match="cannot encode"):
        encode_frame(object())


def test_encode_frame_refuses_frames_over_the_limit() -> None:
    with pytest.raises(LocalProtocolError, match="exceeds the limit"):
        encode_frame(b"x" * 100, max_frame_size=50)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(max_frame_size=0)
