import enum
import json
import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kv_protocol.framing import DEFAULT_MAX_DEPTH
from kv_protocol.records import tagged

# Ints on both sides of the 64-bit boundary, floats of every kind, maps whose keys
# need the $map form (non-text, or text starting with "$").
big_ints = st.integers(min_value=-(2**64), max_value=2**64) | st.sampled_from(
    [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**400, -(10**400)]
)
map_keys = (
    st.none() | st.booleans() | big_ints | st.floats() | st.text(max_size=6) | st.binary(max_size=6)
    | st.sampled_from(["$int", "$", "$map", "a$"])
)
scalars = st.none() | st.booleans() | big_ints | st.floats() | st.text(max_size=12) | st.binary(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    | st.dictionaries(map_keys, inner, max_size=3),
    max_leaves=16,
)


def identical(a: object, b: object) -> bool:
    """Equal with types, order, NaN as itself and the sign of zero: 1, 1.0 and True differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return len(a) == len(b) and all(
            identical(ka, kb) and identical(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    return a == b


def nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


@given(values)
@example({1: "a", "b": 2, b"c": None, None: [], False: 1.5, 2.5: {}})
@example([float("nan"), float("inf"), -0.0, 2**63, -(2**63) - 1, b"", {"$int": "1"}])
def test_round_trip_keeps_every_type(value: object) -> None:
    text = tagged.dumps(value)
    assert identical(tagged.loads(text), value)
    assert identical(tagged.loads(text.encode()), value)


@given(values)
def test_text_is_canonical_one_line_utf8(value: object) -> None:
    text = tagged.dumps(value)
    assert "\n" not in text and "\r" not in text
    assert tagged.dumps(tagged.loads(text)) == text == tagged.dumps(value)
    text.encode("utf-8")  # no lone surrogates
    json.loads(text)  # plain JSON to any other reader


@given(st.lists(scalars, max_size=8))
def test_flat_writer_matches_the_c_encoder(items: list[object]) -> None:
    assert tagged._flat(items) == tagged._encode(tagged._convert(items, DEFAULT_MAX_DEPTH))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1, "1"),
        (1.0, "1.0"),
        (True, "true"),
        (None, "null"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (2**63 - 1, "9223372036854775807"),
        (2**63, '{"$int":"8000000000000000"}'),
        (-(2**63), "-9223372036854775808"),
        (-(2**63) - 1, '{"$int":"-8000000000000001"}'),
        (float("inf"), '{"$float":"inf"}'),
        (float("-inf"), '{"$float":"-inf"}'),
        (float("nan"), '{"$float":"nan"}'),
        (b"\x00\xff", '{"$bytes":"AP8="}'),
        ("é\n\t\"", '"é\\n\\t\\""'),
        ({"a": [1, 2.5]}, '{"a":[1,2.5]}'),
        ({"$a": 1}, '{"$map":[["$a",1]]}'),
        ({1: b"x", None: 2}, '{"$map":[[1,{"$bytes":"eA=="}],[null,2]]}'),
        (["SET", "k", b"v"], '["SET","k",{"$bytes":"dg=="}]'),
        ((1, "a"), '[1,"a"]'),
    ],
)
def test_encoding_rules(value: object, text: str) -> None:
    assert tagged.dumps(value) == text


def test_bool_int_and_float_stay_apart() -> None:
    assert identical(tagged.loads(tagged.dumps([True, 1, 1.0, 0, False, 0.0])), [True, 1, 1.0, 0, False, 0.0])
    assert tagged.loads("1E3") == 1000.0 and type(tagged.loads("1E3")) is float


def test_huge_ints_pass_the_decimal_digit_limit() -> None:
    value = -(7**20000)  # ~17,000 decimal digits: str(value) would raise
    assert tagged.loads(tagged.dumps([value])) == [value]


def test_subclasses_are_written_as_their_base_type() -> None:
    class Color(enum.StrEnum):
        RED = "red"

    class Size(enum.IntEnum):
        BIG = 2**70

    text = tagged.dumps([Color.RED, Size.BIG, {Color.RED: 1}])
    assert text == '["red",{"$int":"400000000000000000"},{"red":1}]'


def test_nesting_is_bounded_both_ways() -> None:
    deepest = nested(DEFAULT_MAX_DEPTH)
    assert tagged.loads(tagged.dumps(deepest)) == deepest
    with pytest.raises(ValueError, match="deeper than 64"):
        tagged.dumps(nested(DEFAULT_MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="deeper than 64"):
        tagged.loads("[" * 65 + "]" * 65)
    with pytest.raises(ValueError, match="deeper than 64"):
        tagged.loads("[" * 100_000)
    cyclic: list[object] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="deeper than 64"):
        tagged.dumps(cyclic)


@pytest.mark.parametrize("value", [{1, 2}, object(), [1, {(1, 2): 3}], {"a": 1j}])
def test_what_is_not_a_value_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        tagged.dumps(value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"$int":"0x1f"}', "lowercase hex"),
        ('{"$int":"1F"}', "lowercase hex"),
        ('{"$int":31}', "lowercase hex"),
        ('{"$float":"Infinity"}', '"inf"'),
        ('{"$bytes":"AP8"}', "invalid base64"),
        ('{"$bytes":"A P8="}', "invalid base64"),
        ('{"$bytes":"é"}', "invalid base64"),
        ('{"$bytes":[1]}', "base64 text"),
        ('{"$map":{"a":1}}', "array of"),
        ('{"$map":[[1]]}', "pairs"),
        ('{"$map":[[[1],2]]}', "scalars"),
        ('{"$map":[[{"a":1},2]]}', "scalars"),
        ('{"$map":[[1,"a"],[1,"b"]]}', "duplicate"),
        ('{"$map":[[1,"a"],[true,"b"]]}', "duplicate"),
        ('{"$int":"1","x":2}', "single tag"),
        ('{"$set":[1]}', "unknown tag"),
        ('{"\\u0024set":[1]}', "unknown tag"),
        ('{"a":1,"a":2}', "duplicate key 'a'"),
        ('[{"a":1,"a":2}]', "duplicate key 'a'"),
        ("[NaN]", "NaN is not JSON"),
        ("-Infinity", "Infinity is not JSON"),
        ("[1,]", "invalid JSON"),
        ("", "invalid JSON"),
        ("[1] [2]", "extra data"),
        ("'a'", "invalid JSON"),
    ],
)
def test_malformed_input_is_a_value_error(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("[", r"\[")):
        tagged.loads(text)


def test_escaped_dollar_keys_are_tags_too_and_whitespace_is_allowed() -> None:
    assert tagged.loads(' {"\\u0024int" : "-1f"}\n') == -31


def test_invalid_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="UTF-8"):
        tagged.loads(b'["\xff"]')


json_fragments = st.lists(
    st.sampled_from(["{", "}", "[", "]", ",", ":", '"', '"$int"', '"$float"', '"$bytes"', '"$map"', '"a"',
                     '"-1f"', '"inf"', '"AA=="', "1", "-0", "1.5e3", "true", "null", "NaN", "\\u0024", " "]),
    max_size=30,
).map("".join)


@given(st.text(max_size=40) | json_fragments | st.binary(max_size=40))
@example('{"$map":[[{"$bytes":"AA=="},{"$map":[]}]]}')
def test_any_input_decodes_or_raises_value_error(text: str | bytes) -> None:
    try:
        value = tagged.loads(text)
    except ValueError:
        return
    assert identical(tagged.loads(tagged.dumps(value)), value)
