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

from typing import Final, TypeAlias, TypeGuard

Key: TypeAlias = str | bytes
MapKey: TypeAlias = bool | int | float | str | bytes | None
Value: TypeAlias = MapKey | list["Value"] | dict[MapKey, "Value"]

_SCALARS: Final = frozenset({str, bytes, int, float, bool, type(None)})
_SCALAR_BASES: Final = (str, bytes, int, float)


def is_key(obj: object) -> TypeGuard[Key]:
    """Keys are text or bytes."""
    return type(obj) is str or type(obj) is bytes


def is_value(obj: object) -> TypeGuard[Value]:
    """Whether ``obj`` is a storable value (recursively).

    Exact types are checked first because this runs for every stored value on
    the server's hot path; subclasses (a ``StrEnum`` member, an ``IntFlag``) are
    accepted too, since CBOR encodes them as their base type. Tuples are
    accepted because they encode as arrays (they come back as lists).
    """
    kind = type(obj)
    if kind in _SCALARS:
        return True
    if kind is list or kind is tuple:
        return all(map(is_value, obj))  # type: ignore[call-overload]
    if kind is dict:
        return all(_is_map_key(k) and is_value(v) for k, v in obj.items())  # type: ignore[attr-defined]
    return isinstance(obj, _SCALAR_BASES)


def _is_map_key(obj: object) -> bool:
    return type(obj) in _SCALARS or isinstance(obj, _SCALAR_BASES)


def type_name(obj: object) -> str:
    """A short human name for an argument's type, for error messages."""
    names = {str: "text", bytes: "bytes", bool: "bool", type(None): "null", dict: "map"}
    return names.get(type(obj), type(obj).__name__)
