"""Tagged JSON: one line of lossless UTF-8 text for every kv value.

The append-only file and the plaintext snapshot store values as this text, so a
person can read them and any JSON library can parse them; a few tags carry what
plain JSON would lose. A reader in another language follows these rules:

1. ``null``, ``true``, ``false``, strings and arrays are themselves. An integer in
   [-2**63, 2**63) is a JSON number without ``.``, ``e`` or ``E``; any other integer
   is ``{"$int": H}`` where H is its lowercase hexadecimal digits with a leading
   ``-`` when negative and no ``0x`` (``-1f`` is -31). JSON libraries elsewhere lose
   precision past 64 bits, and hex has no digit-count limit (Python refuses to turn
   ints of more than 4,300 decimal digits into text).
2. A finite float is a JSON number written by Python's ``repr``, which always holds
   ``.`` or ``e`` (``1.0``, ``1e+16``, ``-0.0``), so a reader tells 1.0 from 1 by the
   text alone: a number with ``.``, ``e`` or ``E`` is a float, any other an integer.
   Infinities and NaN are ``{"$float": "inf"}``, ``"-inf"`` or ``"nan"`` (every NaN
   is written as the same one).
3. Bytes are ``{"$bytes": B}`` where B is standard base64 (RFC 4648 §4) with padding.
4. A map is a JSON object when every key is a string and none starts with ``$``;
   otherwise ``{"$map": [[k1, v1], [k2, v2], ...]}`` with keys and values encoded by
   these rules (keys are scalars: null, booleans, numbers, strings or bytes). Either
   way the order of the entries is kept.
5. Reading: an object with any key starting with ``$`` must be exactly one of the
   four tags with a payload of the right type, and a map must not repeat a key (nor
   may any JSON object). ``NaN`` and ``Infinity`` literals are refused. Values nest
   at most :data:`~kv_protocol.framing.DEFAULT_MAX_DEPTH` containers deep (a tag's own
   object and arrays do not count). Every failure is a :class:`ValueError`.
6. Writing is compact (no spaces outside strings), non-ASCII characters are written
   as themselves (UTF-8), control characters are escaped, so the text never holds a
   raw newline, and the same value always gives the same text: it is the canonical
   form the append-only file's checksums cover.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable
from typing import Any, Final, NoReturn

from kv_protocol.framing import DEFAULT_MAX_DEPTH
from kv_protocol.values import Value, describe, type_name

INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1

_TAGS: Final = ("$int", "$float", "$bytes", "$map")
_HEX: Final = re.compile(r"-?[0-9a-f]+")
_FLOATS: Final = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}
_MAP_KEY_TYPES: Final = frozenset({str, bytes, int, float, bool, type(None)})
_JSON_SPACE: Final = " \t\r\n"


def _reject_unknown(obj: object) -> NoReturn:
    raise TypeError(f"{type_name(obj)} is not a kv value")


def _make_encoder() -> Callable[[object], str]:
    # The C encoder called directly costs about a third of JSONEncoder.encode, which
    # builds it anew on every call. It exists in CPython; the fallback keeps other
    # interpreters working. check_circular is off: inputs are trees (the conversion
    # below bounds their depth), and allow_nan is off, so a stray NaN fails loudly.
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False,
                                   allow_nan=False, default=_reject_unknown)
        return encoder.encode
    chunks = make(None, _reject_unknown, json.encoder.encode_basestring, None, ":", ",",
                  False, False, False)
    return lambda obj: "".join(chunks(obj, 0))


_encode: Final = _make_encoder()
_quote: Final = json.encoder.encode_basestring


def dumps(value: object) -> str:
    """Encode a kv value as one line of tagged JSON (rules 1-4 and 6).

    Only the parts of ``value`` that need a tag are converted; a flat list of text,
    64-bit ints, finite floats, booleans and None (most commands) goes straight to
    the C encoder after one type check per item.

    Raises:
        TypeError: ``value`` holds something that is not a kv value (a set, an
            object, a container used as a map key).
        ValueError: ``value`` nests deeper than ``DEFAULT_MAX_DEPTH`` containers.
    """
    if type(value) is list:
        for item in value:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int:
                if INT_MIN <= item <= INT_MAX:
                    continue
            elif kind is float and item - item == 0.0:  # finite
                continue
            break
        else:
            return _encode(value)
        text = _flat(value)
        if text is not None:
            return text
    return _encode(_convert(value, DEFAULT_MAX_DEPTH))


def _flat(items: list[Any]) -> str | None:
    """A list of exact scalars written directly (None if it holds anything else).

    Commands with bytes arguments take this path: building tag dicts for the C
    encoder costs twice as much. The pieces are what the C encoder writes.
    """
    parts: list[str] = []
    append = parts.append
    for item in items:
        kind = type(item)
        if kind is str:
            append(_quote(item))
        elif kind is bytes:
            append('{"$bytes":"' + binascii.b2a_base64(item, newline=False).decode("ascii") + '"}')
        elif kind is bool or item is None:
            append("true" if item is True else "false" if item is False else "null")
        elif kind is int:
            append(int.__repr__(item) if INT_MIN <= item <= INT_MAX else _encode(_convert(item, 0)))
        elif kind is float:
            append(float.__repr__(item) if item - item == 0.0 else _encode(_convert(item, 0)))
        else:
            return None
    return "[" + ",".join(parts) + "]"


def _convert(obj: object, depth: int) -> object:
    """``obj`` with every tagged part replaced by its tag object, ready for the C encoder.

    ``depth`` is how many more containers may nest; it bounds the recursion, so a
    cyclic or absurdly deep value fails with ValueError, never RecursionError.
    """
    kind = type(obj)
    if kind is str or kind is bool or obj is None:
        return obj
    if kind is int:
        return obj if INT_MIN <= obj <= INT_MAX else {"$int": format(obj, "x")}  # type: ignore[operator]
    if kind is float:
        if obj - obj == 0.0:  # type: ignore[operator]
            return obj
        return {"$float": "nan" if obj != obj else "inf" if obj > 0 else "-inf"}  # type: ignore[operator]
    if kind is bytes:
        return {"$bytes": binascii.b2a_base64(obj, newline=False).decode("ascii")}  # type: ignore[arg-type]
    if kind is list or kind is tuple:
        if depth <= 0:
            raise ValueError(f"value nests deeper than {DEFAULT_MAX_DEPTH} containers")
        return [_convert(item, depth - 1) for item in obj]  # type: ignore[attr-defined]
    if kind is dict:
        if depth <= 0:
            raise ValueError(f"value nests deeper than {DEFAULT_MAX_DEPTH} containers")
        items: dict[Any, Any] = obj  # type: ignore[assignment]
        if all(isinstance(key, str) and key[:1] != "$" for key in items):
            return {key: _convert(item, depth - 1) for key, item in items.items()}
        return {"$map": [[_convert_key(key), _convert(item, depth - 1)] for key, item in items.items()]}
    # Subclasses (a StrEnum member, an IntEnum) are written as their base type, as
    # CBOR writes them; bool cannot be subclassed.
    # The base type's own method makes the copy, so an overridden __str__ cannot
    # change what is written.
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, int):
        return _convert(int.__int__(obj), depth)
    if isinstance(obj, float):
        return _convert(float.__float__(obj), depth)
    if isinstance(obj, bytes):
        return _convert(bytes.__bytes__(obj), depth)
    raise TypeError(f"{type_name(obj)} is not a kv value")


def _convert_key(key: object) -> object:
    if type(key) in _MAP_KEY_TYPES or isinstance(key, str | bytes | int | float):
        return _convert(key, 0)
    raise TypeError(f"map keys must be null, booleans, numbers, text or bytes, not {type_name(key)}")


def _plain_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Used when the text has no "$" at all: only duplicates need checking.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _duplicate(pairs)
    return obj


def _object(pairs: list[tuple[str, Any]]) -> object:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _duplicate(pairs)
    for key in obj:
        if key[:1] == "$":
            return _untag(pairs)
    return obj


def _duplicate(pairs: list[tuple[str, Any]]) -> NoReturn:
    keys = [key for key, _ in pairs]
    repeated = next(key for index, key in enumerate(keys) if key in keys[:index])
    raise ValueError(f"duplicate key {describe(repeated)} in a JSON object")


def _untag(pairs: list[tuple[str, Any]]) -> Value:
    """Decode a tag object (rule 5): exactly one known tag with a payload of its type."""
    if len(pairs) != 1:
        keys = ", ".join(describe(key) for key, _ in pairs[:4])
        raise ValueError(f"an object with a '$' key must be a single tag ({', '.join(_TAGS)}), "
                         f"not an object with keys {keys}")
    tag, payload = pairs[0]
    if tag == "$int":
        if type(payload) is str and _HEX.fullmatch(payload):
            return int(payload, 16)
        raise ValueError(f"$int takes lowercase hex digits with an optional '-', not {describe(payload)}")
    if tag == "$float":
        if type(payload) is str and payload in _FLOATS:
            return _FLOATS[payload]
        raise ValueError(f"$float takes \"inf\", \"-inf\" or \"nan\", not {describe(payload)}")
    if tag == "$bytes":
        if type(payload) is not str:
            raise ValueError(f"$bytes takes base64 text, not {type_name(payload)}")
        try:
            return binascii.a2b_base64(payload, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"$bytes holds invalid base64: {exc}") from None
    if tag == "$map":
        return _untag_map(payload)
    raise ValueError(f"unknown tag {describe(tag)}: tags are {', '.join(_TAGS)}")


def _untag_map(payload: object) -> dict[Any, Value]:
    if type(payload) is not list:
        raise ValueError(f"$map takes an array of [key, value] pairs, not {type_name(payload)}")
    result: dict[Any, Value] = {}
    for pair in payload:
        if type(pair) is not list or len(pair) != 2:
            raise ValueError(f"$map entries are [key, value] pairs, not {describe(pair)}")
        key, item = pair
        if type(key) not in _MAP_KEY_TYPES:
            raise ValueError(f"$map keys must be scalars, not {type_name(key)}")
        result[key] = item
    if len(result) != len(payload):
        raise ValueError("duplicate key in a $map (note that 1, 1.0 and true are the same key)")
    return result


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON: write {{\"$float\": ...}} for non-finite floats")


# Two decoders: text without any "$" cannot hold a tag, so its objects only need the
# duplicate check; the C scanner calls the hook once per object, bottom-up.
_PLAIN: Final = json.JSONDecoder(object_pairs_hook=_plain_object, parse_constant=_reject_constant)
_TAGGED: Final = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_reject_constant)


def loads(text: str | bytes) -> Value:
    """Decode one tagged JSON value (rule 5); bytes must be UTF-8.

    Raises:
        ValueError: the text is not JSON, holds a malformed tag, a duplicate key, a
            ``NaN``/``Infinity`` literal or trailing data, or nests deeper than
            ``DEFAULT_MAX_DEPTH`` containers. The message says which.
    """
    if not isinstance(text, str):
        try:
            text = str(text, "utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 text: {exc}") from None
    text = text.strip(_JSON_SPACE)
    # \u0024 is "$" escaped; a key written that way is a tag key all the same.
    decoder = _TAGGED if "$" in text or "\\u0024" in text else _PLAIN
    try:
        value, end = decoder.raw_decode(text)
    except RecursionError:
        raise ValueError(f"value nests deeper than {DEFAULT_MAX_DEPTH} containers") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if end != len(text):
        raise ValueError(f"invalid JSON: extra data at character {end}")
    # Cheap bounds first: nesting deeper than the limit takes more brackets than that.
    if (len(text) > 2 * DEFAULT_MAX_DEPTH and text.count("[") + text.count("{") > DEFAULT_MAX_DEPTH
            and _too_deep(value, DEFAULT_MAX_DEPTH)):
        raise ValueError(f"value nests deeper than {DEFAULT_MAX_DEPTH} containers")
    return value  # type: ignore[no-any-return]


def _too_deep(obj: object, depth: int) -> bool:
    kind = type(obj)
    if kind is list:
        items: Any = obj
    elif kind is dict:
        items = obj.values()  # type: ignore[attr-defined]
    else:
        return False
    if depth <= 0:
        return True
    return any(_too_deep(item, depth - 1) for item in items)
