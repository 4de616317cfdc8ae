import pytest
from hypothesis import given

from kv_protocol.errors import RemoteProtocolError, WrongTypeError
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import (
    ERROR,
    PUSH,
    REPLY,
    Push,
    decode_message,
    encode_error,
    encode_push,
    encode_reply,
)
from protocol_helpers import same, values


@given(values)
def test_encode_reply_is_the_plain_envelope(value: object) -> None:
    assert encode_reply(value) == encode_frame([0, value])
    [item] = FrameDecoder().feed(encode_reply(value))
    kind, got = decode_message(item)
    assert kind == REPLY and same(got, value)


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 23, b"x" * 24, b"x" * 255, b"x" * 256, "", "y" * 23, "y" * 24, "é" * 127,
     "é" * 128, "ü" * 300, None, 0, 23, 24, -1, True, False, 1.5, 2**64, [], {}],
)
def test_fast_reply_paths_match_cbor2(value: object) -> None:
    assert encode_reply(value) == encode_frame([0, value])


def test_error_round_trip() -> None:
    [item] = FrameDecoder().feed(encode_error(WrongTypeError("holds a list")))
    kind, error = decode_message(item)
    assert kind == ERROR
    assert isinstance(error, WrongTypeError) and error.message == "holds a list"


def test_push_round_trip() -> None:
    [item] = FrameDecoder().feed(encode_push("message", "news", {"n": 1}))
    assert decode_message(item) == (PUSH, Push("message", ("news", {"n": 1})))


@pytest.mark.parametrize(
    "item",
    [[], [0], [0, 1, 2], [1, "ERR"], [2], [2, 5], [True, 1], [3, 1], "x", None, {"ok": True}],
)
def test_malformed_envelopes(item: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_message(item)
