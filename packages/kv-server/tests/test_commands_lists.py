import pytest

from kv_protocol.errors import (
    NoKeyError,
    NotIntegerError,
    OutOfRangeError,
    ServerError,
    WrongTypeError,
)
from server_helpers import Call


def test_push_order_and_lengths_follow_redis(call: Call) -> None:
    assert call("LPUSH", "l", "a", "b", "c") == 3
    assert call("RPUSH", "l", 1, [2], {"x": None}) == 6
    assert call("LRANGE", "l", 0, -1) == ["c", "b", "a", 1, [2], {"x": None}]
    assert call("TYPE", "l") == "list"


def test_pushx_only_on_existing_lists(call: Call) -> None:
    assert call("LPUSHX", "l", "a") == 0 and call("RPUSHX", "l", "a") == 0
    assert call("EXISTS", "l") == 0
    call("RPUSH", "l", "x")
    assert call("LPUSHX", "l", "a") == 2 and call("RPUSHX", "l", "z") == 3
    assert call("LRANGE", "l", 0, -1) == ["a", "x", "z"]


def test_pops_with_and_without_count(call: Call) -> None:
    call("RPUSH", "q", 1, 2, 3, 4, 5)
    assert call("LPOP", "q") == 1
    assert call("RPOP", "q") == 5
    assert call("LPOP", "q", 0) == []
    assert call("LPOP", "q", 2) == [2, 3]
    assert call("RPOP", "q", 10) == [4]
    assert call("EXISTS", "q") == 0, "an emptied list is deleted"
    assert call("LPOP", "q") is None and call("LPOP", "q", 3) is None
    with pytest.raises(OutOfRangeError):
        call("LPOP", "q", -1)


def test_index_and_range_rules(call: Call) -> None:
    call("RPUSH", "l", "a", "b", "c", "d")
    assert [call("LINDEX", "l", i) for i in (0, 3, 4, -1, -4, -5)] == ["a", "d", None, "d", "a", None]
    assert call("LRANGE", "l", 1, 2) == ["b", "c"]
    assert call("LRANGE", "l", -3, -2) == ["b", "c"]
    assert call("LRANGE", "l", -100, 100) == ["a", "b", "c", "d"]
    assert call("LRANGE", "l", 3, 1) == [] and call("LRANGE", "l", 4, 10) == []
    assert call("LRANGE", "l", 2, 2**63 - 1) == ["c", "d"]
    with pytest.raises(NotIntegerError):
        call("LRANGE", "l", 2, 2**63)
    assert call("LRANGE", "missing", 0, -1) == []
    assert call("LLEN", "l") == 4 and call("LLEN", "missing") == 0


def test_lrange_from_the_far_end_of_a_long_list(call: Call) -> None:
    call("RPUSH", "l", *range(1000))
    assert call("LRANGE", "l", -3, -1) == [997, 998, 999]
    assert call("LRANGE", "l", 990, 992) == [990, 991, 992]


def test_lset(call: Call) -> None:
    with pytest.raises(NoKeyError):
        call("LSET", "l", 0, "x")
    call("RPUSH", "l", "a", "b")
    assert call("LSET", "l", -1, "B") == "OK"
    assert call("LRANGE", "l", 0, -1) == ["a", "B"]
    with pytest.raises(OutOfRangeError):
        call("LSET", "l", 2, "x")


def test_lrem_counts_and_directions_with_typed_equality(call: Call) -> None:
    call("RPUSH", "l", 1, 1.0, True, "1", 1, [1], 1)
    assert call("LREM", "l", 1, 1) == 1
    assert call("LRANGE", "l", 0, -1) == [1.0, True, "1", 1, [1], 1]
    assert call("LREM", "l", -1, 1) == 1
    assert call("LRANGE", "l", 0, -1) == [1.0, True, "1", 1, [1]]
    assert call("LREM", "l", 0, [1]) == 1
    assert call("LREM", "l", 0, 7) == 0
    assert call("LRANGE", "l", 0, -1) == [1.0, True, "1", 1]
    lst = call("LRANGE", "l", 0, -1)
    assert [type(x) for x in lst] == [float, bool, str, int]


def test_ltrim_and_empty_deletion(call: Call) -> None:
    call("RPUSH", "l", *"abcdef")
    assert call("LTRIM", "l", 1, -2) == "OK"
    assert call("LRANGE", "l", 0, -1) == list("bcde")
    call("LTRIM", "l", 5, 10)
    assert call("EXISTS", "l") == 0
    assert call("LTRIM", "missing", 0, 1) == "OK"


def test_linsert(call: Call) -> None:
    assert call("LINSERT", "l", "BEFORE", "x", "y") == 0
    call("RPUSH", "l", "a", "c")
    assert call("LINSERT", "l", "after", "a", "b") == 3
    assert call("LINSERT", "l", "BEFORE", "a", "start") == 4
    assert call("LINSERT", "l", "BEFORE", "zzz", "q") == -1
    assert call("LRANGE", "l", 0, -1) == ["start", "a", "b", "c"]
    with pytest.raises(ServerError):
        call("LINSERT", "l", "MIDDLE", "a", "b")


def test_lpos_options(call: Call) -> None:
    call("RPUSH", "l", "a", "b", "a", "c", "a")
    assert call("LPOS", "l", "a") == 0
    assert call("LPOS", "l", "a", "RANK", 2) == 2
    assert call("LPOS", "l", "a", "RANK", -1) == 4
    assert call("LPOS", "l", "a", "COUNT", 0) == [0, 2, 4]
    assert call("LPOS", "l", "a", "COUNT", 2, "RANK", -1) == [4, 2]
    assert call("LPOS", "l", "a", "COUNT", 0, "MAXLEN", 3) == [0, 2]
    assert call("LPOS", "l", "zz") is None and call("LPOS", "l", "zz", "COUNT", 1) == []
    assert call("LPOS", "missing", "a") is None
    assert call("LPOS", "l", "a", "MAXLEN", 2**63 - 1) == 0
    with pytest.raises(NotIntegerError):
        call("LPOS", "l", "a", "MAXLEN", 2**63)
    for bad in (("RANK", 0), ("COUNT", -1), ("MAXLEN", -1)):
        with pytest.raises(OutOfRangeError):
            call("LPOS", "l", "a", *bad)
    with pytest.raises(ServerError, match="syntax"):
        call("LPOS", "l", "a", "RANK", 1, "RANK", 2)


def test_moves_between_lists(call: Call) -> None:
    call("RPUSH", "src", 1, 2, 3)
    assert call("LMOVE", "src", "dst", "LEFT", "RIGHT") == 1
    assert call("RPOPLPUSH", "src", "dst") == 3
    assert call("LPOPRPUSH", "src", "dst") == 2
    assert call("EXISTS", "src") == 0
    assert call("LRANGE", "dst", 0, -1) == [3, 1, 2]
    assert call("LMOVE", "src", "dst", "RIGHT", "LEFT") is None


def test_same_key_rotates(call: Call) -> None:
    call("RPUSH", "ring", "a", "b", "c")
    assert call("LPOPRPUSH", "ring", "ring") == "a"
    assert call("LRANGE", "ring", 0, -1) == ["b", "c", "a"]
    assert call("RPOPLPUSH", "ring", "ring") == "a"
    assert call("LRANGE", "ring", 0, -1) == ["a", "b", "c"]


def test_move_to_a_wrong_type_moves_nothing(call: Call) -> None:
    call("RPUSH", "src", 1)
    call("SET", "s", "text")
    with pytest.raises(WrongTypeError):
        call("LMOVE", "src", "s", "LEFT", "LEFT")
    assert call("LRANGE", "src", 0, -1) == [1]


@pytest.mark.parametrize(
    "argv",
    [("LPUSH", "s", 1), ("LPOP", "s"), ("LLEN", "s"), ("LINDEX", "s", 0), ("LRANGE", "s", 0, 1),
     ("LSET", "s", 0, 1), ("LREM", "s", 0, 1), ("LTRIM", "s", 0, 1), ("LPOS", "s", 1),
     ("LINSERT", "s", "BEFORE", 1, 2), ("RPOPLPUSH", "s", "x")],
)
def test_list_commands_on_a_string_key(call: Call, argv: tuple[object, ...]) -> None:
    call("SET", "s", [1, 2])
    with pytest.raises(WrongTypeError):
        call(*argv)


def test_string_commands_on_a_list_key(call: Call) -> None:
    call("RPUSH", "l", 1)
    for argv in (("GET", "l"), ("GETSET", "l", 1), ("APPEND", "l", "x"), ("STRLEN", "l"),
                 ("INCR", "l"), ("GETDEL", "l"), ("HGET", "l", "f")):
        with pytest.raises(WrongTypeError):
            call(*argv)
    assert call("MGET", "l") == [None]
    assert call("SET", "l", 5) == "OK" and call("GET", "l") == 5
