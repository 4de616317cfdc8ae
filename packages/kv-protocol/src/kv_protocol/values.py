"""The value universe: what kv stores and sends back with its type intact.

kv keeps Python's JSON-like types end to end: None, bool, int (any size), float,
str, bytes, list and dict. Map keys inside values are scalars (not lists or maps),
because CBOR arrays used as map keys would come back as tuples, which kv would not
give back as sent. Keys of the keyspace itself are text or bytes, as in Redis.

The decoder already refuses CBOR tags (see :mod:`kv_protocol.framing`); this module
refuses what slips through as plain CBOR: simple values, ``undefined`` and
container map keys.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Final, TypeAlias, TypeGuard

import cbor2

Key: TypeAlias = str | bytes
MapKey: TypeAlias = bool | int | float | str | bytes | None
Value: TypeAlias = MapKey | list["Value"] | dict[MapKey, "Value"]

# Stored values nest at most this deep, so that every reply that carries one fits the
# 64 levels every decoder accepts: a reply wraps a value in up to 8 more levels (the
# envelope, a list of results, a transaction's per-command envelopes).
MAX_VALUE_DEPTH: Final = 56

_SCALARS: Final = frozenset({str, bytes, int, float, bool, type(None)})
_SCALAR_BASES: Final = (str, bytes, int, float)


def is_key(obj: object) -> TypeGuard[Key]:
    """Keys are text or bytes."""
    return type(obj) is str or type(obj) is bytes


def is_value(obj: object, depth: int = MAX_VALUE_DEPTH) -> TypeGuard[Value]:
    """Whether ``obj`` is a storable value nested at most ``depth`` containers deep.

    Exact types are checked first because this runs for every stored value on
    the server's hot path; subclasses (a ``StrEnum`` member, an ``IntFlag``) are
    accepted too, since CBOR encodes them as their base type. Tuples are
    accepted because they encode as arrays (they come back as lists).
    """
    kind = type(obj)
    if kind in _SCALARS:
        return True
    if kind is list or kind is tuple:
        return depth > 0 and all(map(is_value, obj, itertools.repeat(depth - 1)))  # type: ignore[call-overload]
    if kind is dict:
        return depth > 0 and all(
            _is_map_key(k) and is_value(v, depth - 1) for k, v in obj.items()  # type: ignore[attr-defined]
        )
    return isinstance(obj, _SCALAR_BASES)


def _is_map_key(obj: object) -> bool:
    return type(obj) in _SCALARS or isinstance(obj, _SCALAR_BASES)


def type_name(obj: object) -> str:
    """A short human name for an argument's type, for error messages."""
    names = {str: "text", bytes: "bytes", bool: "bool", type(None): "null", dict: "map"}
    return names.get(type(obj), type(obj).__name__)


def describe(obj: object, limit: int = 40) -> str:
    """A short description of peer data for error and log messages, never a full repr.

    The repr of a peer's value can be huge (a 64 MiB frame) or fail outright: Python
    refuses to turn an int of more than 4,300 digits into text, and a bignum of that
    size fits in a small frame.
    """
    if isinstance(obj, str | bytes):
        return repr(obj[:limit]) + ("..." if len(obj) > limit else "")
    if type(obj) is int and obj.bit_length() > 64:
        return f"<int of {obj.bit_length()} bits>"
    if obj is None or isinstance(obj, bool | int | float):
        return repr(obj)
    if isinstance(obj, list | tuple | dict):
        return f"<{type_name(obj)} of {len(obj)}>"
    return f"<{type_name(obj)}>"


def matcher(target: object) -> Callable[[object], bool]:
    """A test for values equal to ``target`` with their types: 1 is not 1.0, "1" or true.

    Python's ``==`` says ``1 == 1.0 == True``; kv keeps types, so a list search must
    not. Scalars compare by exact type and value; containers by their canonical
    CBOR encoding, which carries every type and sorts map keys.
    """
    kind = type(target)
    if kind is list or kind is dict:
        encoded = cbor2.dumps(target, canonical=True)
        return lambda obj: type(obj) is kind and cbor2.dumps(obj, canonical=True) == encoded
    return lambda obj: type(obj) is kind and obj == target
