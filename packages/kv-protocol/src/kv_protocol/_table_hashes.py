"""The command table: hashes, a map of field -> value under one key."""

from __future__ import annotations

from typing import Final

from ._kinds import ArgKind
from ._spec import Arg, CommandSpec, Flag, Reply, integer, key, value

_RO = Flag.READONLY
_W = Flag.WRITE
_WM = _W | Flag.DENYOOM  # may grow memory: checked against --maxmemory


def _field(*, multiple: bool = False) -> Arg:
    return Arg("field", ArgKind.STRING, multiple=multiple)


COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("HSET", "hash", "Set fields of a hash.",
                (key(), Arg("data", parts=(_field(), value()), multiple=True)), _WM, Reply.INTEGER,
                notes="Fields are text or bytes (distinct, as keys are); values are any value. "
                      "Answers how many fields were added (not those replaced)."),
    CommandSpec("HSETNX", "hash", "Set a field of a hash only if it does not exist.",
                (key(), _field(), value()), _WM, Reply.INTEGER,
                notes="Answers 1 if set, 0 if the field existed."),
    CommandSpec("HGET", "hash", "The value of a field, or null.", (key(), _field()), _RO,
                Reply.VALUE),
    CommandSpec("HMGET", "hash", "The values of several fields.", (key(), _field(multiple=True)),
                _RO, Reply.LIST, notes="Missing fields (or a missing key) give null."),
    CommandSpec("HDEL", "hash", "Delete fields; answer how many existed.",
                (key(), _field(multiple=True)), _W, Reply.INTEGER,
                notes="A hash left empty is deleted."),
    CommandSpec("HEXISTS", "hash", "Whether a field exists: 1 or 0.", (key(), _field()), _RO,
                Reply.INTEGER),
    CommandSpec("HLEN", "hash", "The number of fields.", (key(),), _RO, Reply.INTEGER),
    CommandSpec("HKEYS", "hash", "Every field name.", (key(),), _RO, Reply.LIST,
                notes="In the order the fields were first set."),
    CommandSpec("HVALS", "hash", "Every field's value.", (key(),), _RO, Reply.LIST,
                notes="In the order the fields were first set."),
    CommandSpec("HGETALL", "hash", "Every field and its value, as a map.", (key(),), _RO,
                Reply.MAP, notes="A map, not Redis's flat list; empty for a missing key."),
    CommandSpec("HSTRLEN", "hash", "The length of a field's text or bytes value.",
                (key(), _field()), _RO, Reply.INTEGER,
                notes="Measured as STRLEN measures: 0 for a missing field, WRONGTYPE for a "
                      "value other than text or bytes."),
    CommandSpec("HINCRBY", "hash", "Add to a field's integer value.",
                (key(), _field(), integer("increment")), _WM, Reply.INTEGER,
                notes="The rules of INCRBY: the field must hold an integer (missing counts "
                      "as 0) and the result must fit 64 bits."),
    CommandSpec("HINCRBYFLOAT", "hash", "Add to a field's numeric value; the result is a float.",
                (key(), _field(), Arg("increment", ArgKind.NUMBER)), _WM, Reply.VALUE,
                notes="The rules of INCRBYFLOAT."),
    CommandSpec("HFIND", "hash", "The fields whose name contains a substring.",
                (key(), Arg("substring", ArgKind.STRING)), _RO, Reply.LIST,
                notes="From kv's original system (Redis lacks it). Case-sensitive containment "
                      "of the substring in the field name; text and bytes are compared in "
                      "UTF-8, so a text substring finds bytes fields too and the other way "
                      "round. The empty substring matches every field. Answers the field "
                      "names in the order they were first set; an empty list for a missing "
                      "key."),
)
