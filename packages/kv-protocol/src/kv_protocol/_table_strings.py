"""The command table: string keys (one value of any type) and counters."""

from __future__ import annotations

from typing import Final

from ._kinds import ArgKind
from ._spec import Arg, CommandSpec, Flag, Option, Reply, integer, key, options, value

_RO = Flag.READONLY
_W = Flag.WRITE
_WM = _W | Flag.DENYOOM  # may grow memory: checked against --maxmemory


def _expiry_options(*extra: Option) -> tuple[Option, ...]:
    return (
        Option("EX", integer("seconds"), "expiry"),
        Option("PX", integer("milliseconds"), "expiry"),
        Option("EXAT", integer("unix-time-seconds"), "expiry"),
        Option("PXAT", integer("unix-time-milliseconds"), "expiry"),
        *extra,
    )


_COUNTER_NOTES: Final = (
    "The key must hold an integer (a missing key counts as 0); any other value, text "
    "of digits included, answers NOTINTEGER, since kv's values are typed. The result "
    "must fit a signed 64-bit integer as in Redis: an increment outside that range "
    "answers NOTINTEGER, a result outside it answers OUTOFRANGE and changes nothing. "
    "The key's time to live is kept."
)

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("SET", "string", "Set a key to a value.",
                (key(), value(), options(*_expiry_options(Option("KEEPTTL", group="expiry")),
                                         Option("NX", group="condition"),
                                         Option("XX", group="condition"), Option("GET"))),
                _WM, Reply.VALUE,
                notes="The value keeps its type: `SET k 12345` then `GET k` gives the integer. "
                      "Answers `OK`, or null when NX (only if missing) or XX (only if present) "
                      "stops it; with GET, the old value (null if there was none) instead, "
                      "and WRONGTYPE, changing nothing, if the key is a list or hash. SET "
                      "replaces a key of any type and removes its time to live unless "
                      "KEEPTTL; EX/PX set a relative time to live (it must be positive), "
                      "EXAT/PXAT an absolute Unix time (one in the past deletes the key)."),
    CommandSpec("GET", "string", "The value of a key, or null.", (key(),), _RO, Reply.VALUE),
    CommandSpec("GETSET", "string", "Set a key and return its old value.", (key(), value()),
                _WM, Reply.VALUE, notes="Removes the key's time to live, as SET does."),
    CommandSpec("GETDEL", "string", "Delete a key and return its value.", (key(),), _W,
                Reply.VALUE),
    CommandSpec("GETEX", "string", "The value of a key, changing its time to live.",
                (key(), options(*_expiry_options(Option("PERSIST", group="expiry")))),
                _W, Reply.VALUE,
                notes="Without options it is GET. PERSIST removes the time to live."),
    CommandSpec("SETNX", "string", "Set a key only if it does not exist.", (key(), value()),
                _WM, Reply.INTEGER, notes="Answers 1 if it was set, 0 if the key existed."),
    CommandSpec("SETEX", "string", "Set a key with a time to live in seconds.",
                (key(), integer("seconds"), value()), _WM, Reply.STATUS,
                notes="The time must be positive: otherwise OUTOFRANGE."),
    CommandSpec("PSETEX", "string", "Set a key with a time to live in milliseconds.",
                (key(), integer("milliseconds"), value()), _WM, Reply.STATUS,
                notes="The time must be positive: otherwise OUTOFRANGE."),
    CommandSpec("MSET", "string", "Set several keys at once.",
                (Arg("data", parts=(key(), value()), multiple=True),), _WM, Reply.STATUS),
    CommandSpec("MGET", "string", "The values of several keys.", (key(multiple=True),), _RO,
                Reply.LIST, notes="Missing keys and keys that are not strings give null."),
    CommandSpec("APPEND", "string", "Append text or bytes to a value; answer its new length.",
                (key(), Arg("value", ArgKind.STRING)), _WM, Reply.INTEGER,
                notes="kv differs from Redis on purpose: values are typed, so APPEND applies "
                      "to text and bytes values only (an integer is not a string of digits "
                      "here: WRONGTYPE). The stored type is kept: text appended to bytes is "
                      "UTF-8 encoded; bytes appended to text must be valid UTF-8. The "
                      "length is counted as STRLEN counts it."),
    CommandSpec("STRLEN", "string", "The length of a text or bytes value.", (key(),), _RO,
                Reply.INTEGER,
                notes="Text is measured in UTF-8 bytes, as Redis measures its strings; a "
                      "missing key gives 0; values other than text and bytes answer "
                      "WRONGTYPE."),
    CommandSpec("SETRANGE", "string", "Overwrite part of a text or bytes value at a byte offset.",
                (key(), integer("offset"), Arg("value", ArgKind.STRING)), _WM, Reply.INTEGER,
                notes="Offsets count bytes, text's in its UTF-8 form; a value too short is "
                      "padded with zero bytes, as in Redis. The stored type is kept (a missing "
                      "key takes the argument's type), so on text the result must be valid "
                      "UTF-8 (ARGTYPE otherwise). An empty value changes nothing. Answers "
                      "the new length."),
    CommandSpec("GETRANGE", "string", "Part of a text or bytes value, by byte offsets.",
                (key(), integer("start"), integer("end")), _RO, Reply.VALUE,
                notes="Offsets count bytes (negative ones from the end) and both ends are "
                      "included, as in Redis. Text answers text: a character that either end "
                      "cuts through is left out, so the reply is always valid text. A "
                      "missing key answers empty text."),
    CommandSpec("INCR", "counter", "Add 1 to an integer value.", (key(),), _WM, Reply.INTEGER,
                notes=_COUNTER_NOTES),
    CommandSpec("DECR", "counter", "Subtract 1 from an integer value.", (key(),), _WM,
                Reply.INTEGER, notes=_COUNTER_NOTES),
    CommandSpec("INCRBY", "counter", "Add to an integer value.", (key(), integer("increment")),
                _WM, Reply.INTEGER, notes=_COUNTER_NOTES),
    CommandSpec("DECRBY", "counter", "Subtract from an integer value.",
                (key(), integer("decrement")), _WM, Reply.INTEGER, notes=_COUNTER_NOTES),
    CommandSpec("INCRBYFLOAT", "counter", "Add to a numeric value; the result is a float.",
                (key(), Arg("increment", ArgKind.NUMBER)), _WM, Reply.VALUE,
                notes="The key must hold an integer or a float (a missing key counts as 0); "
                      "the result is stored and answered as a float (Redis answers its text). "
                      "A result that is infinite or not a number answers OUTOFRANGE and "
                      "changes nothing. The key's time to live is kept."),
)
