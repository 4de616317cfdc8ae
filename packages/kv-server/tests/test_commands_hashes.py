import pytest

from kv_protocol.errors import NotFloatError, NotIntegerError, OutOfRangeError, WrongTypeError
from server_helpers import Call


def test_hset_counts_new_fields_and_keeps_types(call: Call) -> None:
    assert call("HSET", "h", "a", 1, b"a", [2], "c", None) == 3
    assert call("HSET", "h", "a", 1.5, "d", True) == 1
    assert call("HGETALL", "h") == {"a": 1.5, b"a": [2], "c": None, "d": True}
    assert call("TYPE", "h") == "hash"
    assert call("HKEYS", "h") == ["a", b"a", "c", "d"]
    assert call("HVALS", "h") == [1.5, [2], None, True]
    assert call("HLEN", "h") == 4


def test_reads_of_missing_keys_and_fields(call: Call) -> None:
    assert call("HGET", "h", "f") is None
    assert call("HMGET", "h", "f", "g") == [None, None]
    assert call("HGETALL", "h") == {} and call("HKEYS", "h") == [] and call("HLEN", "h") == 0
    call("HSET", "h", "f", "v")
    assert call("HMGET", "h", "f", "g") == ["v", None]
    assert call("HEXISTS", "h", "f") == 1 and call("HEXISTS", "h", "g") == 0


def test_hsetnx_and_hdel_delete_the_empty_hash(call: Call) -> None:
    assert call("HSETNX", "h", "f", 1) == 1 and call("HSETNX", "h", "f", 2) == 0
    assert call("HGET", "h", "f") == 1
    assert call("HDEL", "h", "f", "f", "g") == 1
    assert call("EXISTS", "h") == 0
    assert call("HDEL", "h", "f") == 0


def test_hstrlen(call: Call) -> None:
    call("HSET", "h", "t", "héllo", "b", b"\x00\x01", "n", 5)
    assert call("HSTRLEN", "h", "t") == 6 and call("HSTRLEN", "h", "b") == 2
    assert call("HSTRLEN", "h", "missing") == 0 and call("HSTRLEN", "nokey", "f") == 0
    with pytest.raises(WrongTypeError):
        call("HSTRLEN", "h", "n")


def test_hincrby_and_hincrbyfloat(call: Call) -> None:
    assert call("HINCRBY", "h", "n", 5) == 5
    assert call("HINCRBY", "h", "n", -7) == -2
    assert call("HINCRBYFLOAT", "h", "n", 0.5) == -1.5
    assert type(call("HGET", "h", "n")) is float
    call("HSET", "h", "t", "12")
    with pytest.raises(NotIntegerError):
        call("HINCRBY", "h", "t", 1)
    with pytest.raises(NotFloatError):
        call("HINCRBYFLOAT", "h", "t", 1)
    call("HSET", "h", "big", 2**63 - 1)
    with pytest.raises(OutOfRangeError):
        call("HINCRBY", "h", "big", 1)
    assert call("HGET", "h", "big") == 2**63 - 1


def test_failed_increment_leaves_no_empty_hash(call: Call) -> None:
    with pytest.raises(NotIntegerError):
        call("HINCRBY", "h", "f", 2**64)
    assert call("EXISTS", "h") == 0


def test_hfind_matches_substrings_in_utf8(call: Call) -> None:
    call("HSET", "h", "user:1", 1, "admin", 2, b"user:\xff", 3, "usér", 4, "USER", 5)
    assert call("HFIND", "h", "user") == ["user:1", b"user:\xff"]
    assert call("HFIND", "h", b"user:") == ["user:1", b"user:\xff"]
    assert call("HFIND", "h", "sé") == ["usér"]
    assert call("HFIND", "h", b"\xff") == [b"user:\xff"]
    assert call("HFIND", "h", "") == ["user:1", "admin", b"user:\xff", "usér", "USER"]
    assert call("HFIND", "missing", "x") == []


@pytest.mark.parametrize(
    "argv",
    [("HSET", "l", "f", 1), ("HGET", "l", "f"), ("HGETALL", "l"), ("HDEL", "l", "f"),
     ("HLEN", "l"), ("HINCRBY", "l", "f", 1), ("HFIND", "l", "f")],
)
def test_hash_commands_on_a_list_key(call: Call, argv: tuple[object, ...]) -> None:
    call("RPUSH", "l", 1)
    with pytest.raises(WrongTypeError):
        call(*argv)
