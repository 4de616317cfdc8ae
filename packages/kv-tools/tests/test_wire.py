"""The tests' commands on each wire, their expected replies, and the reply scanners."""

import pytest

from kv_protocol.errors import WrongTypeError
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import encode_error, encode_reply
from kv_tools._wire import (
    HASH_FIELDS,
    TESTS,
    KvWire,
    ReferenceWire,
    RespWire,
    command,
    field_name,
    key_name,
)

KV = KvWire("h", 1, "p")
RESP = RespWire("h", 1)
REFERENCE = ReferenceWire("h", 1)


def text(s: str) -> bytes:
    """CBOR text under 24 bytes, written out by hand (an oracle independent of cbor2)."""
    return bytes([0x60 | len(s)]) + s.encode()


def frame(*items: bytes) -> bytes:
    body = bytes([0x80 | len(items)]) + b"".join(items)
    return len(body).to_bytes(4, "big") + body


XYZ = b"\x43xyz"  # CBOR bytes of length 3

# Each new test: its command for key 7 and field 3, its kv frame, its RESP bytes.
NEW_TESTS = {
    "incr": (["INCR", "counter:000000000007"], frame(text("INCR"), text("counter:000000000007")),
             b"*2\r\n$4\r\nINCR\r\n$20\r\ncounter:000000000007\r\n"),
    "lpush": (["LPUSH", "mylist", b"xyz"], frame(text("LPUSH"), text("mylist"), XYZ),
              b"*3\r\n$5\r\nLPUSH\r\n$6\r\nmylist\r\n$3\r\nxyz\r\n"),
    "rpush": (["RPUSH", "mylist", b"xyz"], frame(text("RPUSH"), text("mylist"), XYZ),
              b"*3\r\n$5\r\nRPUSH\r\n$6\r\nmylist\r\n$3\r\nxyz\r\n"),
    "lpop": (["LPOP", "mylist"], frame(text("LPOP"), text("mylist")),
             b"*2\r\n$4\r\nLPOP\r\n$6\r\nmylist\r\n"),
    "rpop": (["RPOP", "mylist"], frame(text("RPOP"), text("mylist")),
             b"*2\r\n$4\r\nRPOP\r\n$6\r\nmylist\r\n"),
    "hset": (["HSET", "hash:000000000007", "field:3", b"xyz"],
             frame(text("HSET"), text("hash:000000000007"), text("field:3"), XYZ),
             b"*4\r\n$4\r\nHSET\r\n$17\r\nhash:000000000007\r\n$7\r\nfield:3\r\n$3\r\nxyz\r\n"),
    "hget": (["HGET", "hash:000000000007", "field:3"],
             frame(text("HGET"), text("hash:000000000007"), text("field:3")),
             b"*3\r\n$4\r\nHGET\r\n$17\r\nhash:000000000007\r\n$7\r\nfield:3\r\n"),
}


@pytest.mark.parametrize("name", NEW_TESTS)
def test_new_tests_encode_on_both_wires(name: str) -> None:
    parts, kv_frame, resp_bytes = NEW_TESTS[name]
    assert command(TESTS[name], 7, b"xyz", 3) == parts
    assert KV.encode(parts) == kv_frame
    assert FrameDecoder().feed(kv_frame) == [parts]
    assert RESP.encode(parts) == resp_bytes


def test_the_types_keep_to_their_own_keys() -> None:
    assert key_name(7, "counter") == "counter:000000000007"
    assert field_name(HASH_FIELDS - 1) == "field:9"
    keys = {TESTS[name].command[1] for name in NEW_TESTS}
    assert keys == {"{counter}", "mylist", "{hash}"}


@pytest.mark.parametrize(("name", "kv", "resp"), [
    ("lpop", encode_reply(b"xyz"), b"$3\r\nxyz\r\n"),
    ("rpop", encode_reply(b"xyz"), b"$3\r\nxyz\r\n"),
    ("hget", encode_reply(b"xyz"), b"$3\r\nxyz\r\n"),
    ("hset", b"\x00\x00\x00\x03\x82\x00\x00", b":0\r\n"),  # prefilled: HSET overwrites
    ("incr", None, None), ("lpush", None, None), ("rpush", None, None),
])
def test_expected_replies_of_the_new_tests(name: str, kv: bytes | None, resp: bytes | None) -> None:
    assert KV.reply(TESTS[name], b"xyz") == kv
    assert RESP.reply(TESTS[name], b"xyz") == resp


def test_the_reference_server_runs_only_set_and_get() -> None:
    assert [name for name, test in TESTS.items() if REFERENCE.supports(test)] == ["set", "get"]
    assert all(KV.supports(test) and RESP.supports(test) for test in TESTS.values())


def test_kv_scan_counts_whole_replies_of_any_length() -> None:
    replies = b"".join(encode_reply(n) for n in (5, 300, 70_000, 2**40)) + encode_reply(b"xyz")
    data = bytearray(replies + encode_reply(7)[:5])
    assert KV.scan(data, 0, len(data)) == (5, len(replies))
    assert KV.scan(data, 0, 3) == (0, 0)
    assert KV.scan(data, 7, len(replies)) == (4, len(replies))  # starts at the second reply


def test_kv_scan_raises_on_an_error_reply() -> None:
    data = bytearray(encode_reply(1) + encode_error(WrongTypeError("wrong kind of value")))
    with pytest.raises(RuntimeError, match="WRONGTYPE"):
        KV.scan(data, 0, len(data))


def test_reference_scan_counts_frames_and_its_errors() -> None:
    data = bytearray(encode_frame("OK") * 3)
    assert REFERENCE.scan(data, 0, len(data)) == (3, len(data))
    data += encode_frame({"error": "unknown command 'INCR'"})
    with pytest.raises(RuntimeError, match="unknown command"):
        REFERENCE.scan(data, 0, len(data))


@pytest.mark.parametrize(("data", "expected"), [
    (b":1\r\n:22\r\n:333\r\n", (3, 15)),  # integers only: counted without a loop
    (b":1\r\n:22\r\n:3", (2, 9)),
    (b"$3\r\nxyz\r\n$-1\r\n+OK\r\n:5\r\n", (4, 23)),
    (b"$3\r\nxyz\r\n$3\r\nxy", (1, 9)),
    (b"$3\r\n:yz\r\n", (1, 9)),  # a body that looks like an integer is still one reply
    (b"", (0, 0)),
])
def test_resp_scan_counts_whole_replies(data: bytes, expected: tuple[int, int]) -> None:
    assert RESP.scan(bytearray(data), 0, len(data)) == expected


@pytest.mark.parametrize("data", [b"-ERR no\r\n", b":1\r\n-WRONGTYPE Operation\r\n:2\r\n", b"*1\r\n:1\r\n"])
def test_resp_scan_raises_on_an_error_reply(data: bytes) -> None:
    with pytest.raises(RuntimeError, match="error reply"):
        RESP.scan(bytearray(data), 0, len(data))
