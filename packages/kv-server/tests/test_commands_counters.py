import pytest

from kv_protocol.errors import NotFloatError, NotIntegerError, OutOfRangeError, WrongTypeError
from server_helpers import Call

MAX, MIN = 2**63 - 1, -(2**63)


def test_counters_stay_integers(call: Call) -> None:
    assert call("INCR", "n") == 1
    assert call("INCRBY", "n", 10) == 11
    assert call("DECR", "n") == 10
    assert call("DECRBY", "n", 15) == -5
    assert call("GET", "n") == -5 and type(call("GET", "n")) is int


@pytest.mark.parametrize("value", ["10", b"10", 1.5, True, None, [1], {"a": 1}, 2**64])
def test_non_integers_answer_notinteger(call: Call, value: object) -> None:
    call("SET", "n", value)
    with pytest.raises(NotIntegerError):
        call("INCR", "n")
    assert call("GET", "n") == value


def test_overflow_is_refused_and_changes_nothing(call: Call) -> None:
    call("SET", "n", MAX)
    with pytest.raises(OutOfRangeError):
        call("INCR", "n")
    call("SET", "m", MIN)
    with pytest.raises(OutOfRangeError):
        call("DECR", "m")
    assert call("GET", "n") == MAX and call("GET", "m") == MIN
    with pytest.raises(NotIntegerError):
        call("INCRBY", "x", MAX + 1)
    with pytest.raises(NotIntegerError):
        call("DECRBY", "x", MAX + 1)
    with pytest.raises(OutOfRangeError):
        call("DECRBY", "x", MIN)
    assert call("DECRBY", "x", MAX) == -MAX
    assert call("EXISTS", "x") == 1


def test_incrbyfloat(call: Call) -> None:
    assert call("INCRBYFLOAT", "f", 1.5) == 1.5
    assert call("INCRBYFLOAT", "f", 2) == 3.5
    call("SET", "i", 10)
    assert call("INCRBYFLOAT", "i", 0) == 10.0 and type(call("GET", "i")) is float
    call("SET", "t", "1.5")
    with pytest.raises(NotFloatError):
        call("INCRBYFLOAT", "t", 1)
    call("SET", "huge", 10**400)
    with pytest.raises(NotFloatError):
        call("INCRBYFLOAT", "huge", 1)
    call("SET", "f", 1e308)
    with pytest.raises(OutOfRangeError):
        call("INCRBYFLOAT", "f", 1e308)
    with pytest.raises(OutOfRangeError):
        call("INCRBYFLOAT", "f", float("nan"))
    assert call("GET", "f") == 1e308


def test_counters_on_a_list_are_wrongtype(call: Call) -> None:
    call("RPUSH", "l", 1)
    for argv in (("INCR", "l"), ("INCRBYFLOAT", "l", 1.0)):
        with pytest.raises(WrongTypeError):
            call(*argv)


def test_counters_keep_the_time_to_live(call: Call) -> None:
    call("SET", "n", 1, "EX", 100)
    call("INCR", "n")
    call("INCRBYFLOAT", "n", 1.5)
    assert 99 <= call("TTL", "n") <= 100
