import pytest
from hypothesis import HealthCheck, given, settings

from kv_protocol.errors import ArgumentTypeError, WrongTypeError
from kv_server._state import ServerState
from protocol_helpers import same, values
from server_helpers import Call


def test_values_keep_their_types(call: Call) -> None:
    assert call("SET", "mykey", 12345) == "OK"
    assert call("GET", "mykey") == 12345
    call("SET", "yourkey", "12345")
    assert call("GET", "yourkey") == "12345"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one key, overwritten
@given(values)
def test_any_value_round_trips(call: Call, value: object) -> None:
    call("SET", b"k", value)
    assert same(call("GET", b"k"), value)


def test_get_missing_is_null_and_null_is_a_value(call: Call) -> None:
    assert call("GET", "missing") is None
    call("SET", "null", None)
    assert call("GET", "null") is None
    assert call("EXISTS", "null", "missing") == 1


def test_text_and_bytes_keys_are_distinct(call: Call) -> None:
    call("SET", "k", "text key")
    call("SET", b"k", "bytes key")
    assert (call("GET", "k"), call("GET", b"k")) == ("text key", "bytes key")


def test_getset(call: Call) -> None:
    assert call("GETSET", "k", 1) is None
    assert call("GETSET", "k", [2]) == 1
    assert call("GET", "k") == [2]


def test_mset_mget(call: Call) -> None:
    assert call("MSET", "a", 1, b"b", "two", "a", 3) == "OK"
    assert call("MGET", "a", b"b", "c", "a") == [3, "two", None, 3]


@pytest.mark.parametrize(
    ("initial", "suffix", "result", "length"),
    [
        (None, "abc", "abc", 3),
        (None, b"\x00\xff", b"\x00\xff", 2),
        ("ab", "cd", "abcd", 4),
        ("h", "é", "hé", 3),
        ("ab", "é".encode(), "abé", 4),
        (b"ab", "é", b"ab\xc3\xa9", 4),
        (b"ab", b"cd", b"abcd", 4),
    ],
)
def test_append(call: Call, initial: object, suffix: object, result: object, length: int) -> None:
    if initial is not None:
        call("SET", "k", initial)
    assert call("APPEND", "k", suffix) == length
    assert call("GET", "k") == result
    assert call("STRLEN", "k") == length


def test_append_invalid_utf8_to_text_is_refused_and_changes_nothing(call: Call) -> None:
    call("SET", "k", "ab")
    with pytest.raises(ArgumentTypeError, match="valid UTF-8"):
        call("APPEND", "k", b"\xff")
    assert call("GET", "k") == "ab"


@pytest.mark.parametrize("value", [12345, 1.5, True, None, [1], {"a": 1}])
def test_append_and_strlen_need_text_or_bytes(call: Call, value: object) -> None:
    call("SET", "k", value)
    with pytest.raises(WrongTypeError, match="APPEND needs a text or bytes value"):
        call("APPEND", "k", "x")
    with pytest.raises(WrongTypeError, match="STRLEN needs a text or bytes value"):
        call("STRLEN", "k")
    assert call("GET", "k") == value


def test_strlen_counts_utf8_bytes(call: Call) -> None:
    assert call("STRLEN", "missing") == 0
    call("SET", "k", "héllo wörld")
    assert call("STRLEN", "k") == len("héllo wörld".encode())


def test_hits_and_misses(state: ServerState, call: Call) -> None:
    call("SET", "k", 1)
    call("GET", "k")
    call("GET", "nope")
    call("MGET", "k", "nope")
    assert (state.keyspace.hits, state.keyspace.misses) == (2, 2)
