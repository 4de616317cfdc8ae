import enum

import cbor2
import pytest
from hypothesis import given

from kv_protocol.values import MAX_VALUE_DEPTH, describe, is_key, is_value, type_name
from protocol_helpers import values


@given(values)
def test_generated_values_are_values(value: object) -> None:
    assert is_value(value)


class Color(enum.StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [None, True, 0, 2**100, 1.5, float("nan"), "", b"", [], {}, [1, [2, {"a": b"x"}]],
     {1: "int key", b"k": None, None: 1.0}, (1, 2), Color.RED],
)
def test_accepted(value: object) -> None:
    assert is_value(value)


@pytest.mark.parametrize(
    "value",
    [cbor2.undefined, cbor2.CBORSimpleValue(16), {(1, 2): 1}, {frozenset(): 1}, [object()],
     {1, 2}, {"a": [cbor2.undefined]}, bytearray(b"x")],
)
def test_refused(value: object) -> None:
    assert not is_value(value)


def test_keys_are_text_or_bytes() -> None:
    assert is_key("k") and is_key(b"k")
    assert not any(is_key(k) for k in (1, None, ["k"], bytearray(b"k")))


def test_type_names_read_well() -> None:
    assert [type_name(v) for v in ("", b"", True, None, {}, 1, [])] == [
        "text", "bytes", "bool", "null", "map", "int", "list"]


def nest(depth: int, kind: str) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


@pytest.mark.parametrize("kind", ["list", "map"])
def test_values_nest_up_to_the_limit(kind: str) -> None:
    assert is_value(nest(MAX_VALUE_DEPTH, kind))
    assert not is_value(nest(MAX_VALUE_DEPTH + 1, kind))


@pytest.mark.parametrize(
    ("obj", "text"),
    [(1 << 15000, "<int of 15001 bits>"), (-5, "-5"), ("x" * 50, repr("x" * 40) + "..."),
     (b"ab", "b'ab'"), ([1, 2], "<list of 2>"), ({}, "<map of 0>"), (None, "None"),
     (cbor2.undefined, "<UndefinedType>")],
    ids=["bignum", "int", "long text", "bytes", "list", "map", "null", "undefined"],
)
def test_describe_is_short_and_never_fails(obj: object, text: str) -> None:
    assert describe(obj) == text
