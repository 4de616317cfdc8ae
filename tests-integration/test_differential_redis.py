"""Differential tests: the same random commands against kv-server and a real redis-server.

A hypothesis state machine sends each generated command to one kv-server (through
kv_client's ``execute_command``) and to one redis-server (through redis-py's, with
its reply callbacks removed so that replies arrive as the server sent them in
RESP2), then compares the two replies after mapping each into a common form. The
servers live for the whole module and both are flushed at the start of every
example. Commands kv has and Redis lacks (HFIND, LPOPRPUSH) are tested at the end
against small Python models instead.

Values mean the same on both sides
----------------------------------
kv's values are typed and Redis's are byte strings, so every argument is generated
as a Python value that kv receives as is and Redis receives as its text
(``str(int)``, ``repr(float)``, text as UTF-8). The generators keep the two meanings
equal: text values use only the letters ``abcxyz`` (so that no text looks like a
number to Redis: ``"5"``, ``"inf"`` or ``"1e3"`` would), counters are integers, and
list elements are short texts (LPOS, LREM and LINSERT compare with types in kv, and
every element is text on both sides). Six keys are shared by every family, each
family preferring two of them, so that commands meet keys of the wrong type often
and lists and hashes still live long enough to grow.

Nothing expires during a run: relative times are at least 100 000 s, absolute ones
are far in the future or long past (which, like zero and negative relative times,
deletes at once), and every far relative time is made unique with a per-example
counter so that a GT/LT decision never depends on whether two commands fell in the
same millisecond. A SET with an EXAT/PXAT in the past is followed by a compared
EXISTS of its key: kv deletes the key at once (docs/commands.md), while Redis 7.0
keeps it, unreadable, until a read or its active expiry removes it, and DBSIZE
would count it meanwhile.

Integer arguments stay inside int64 (without INT64_MIN where Redis negates it in C);
``test_integer_arguments_outside_int64`` checks the refusals of larger ones apart
(increments are the exception: the machine sends those). SETRANGE offsets are
small or beyond both servers' size limits, which differ on purpose.

Mapping replies to a common form (``normalise_kv`` and ``normalise_redis``)
---------------------------------------------------------------------------
- Stored values (GET, list elements, hash values, SET's OK, TYPE's name):
  kv text ``s`` and Redis bytes ``s.encode()`` both become ``s``; a kv integer ``n``
  becomes ``str(n)``, which Redis's bytes must equal exactly; a kv float ``x``
  becomes ``Approx(x)``, and Redis's text must parse as a float within
  ``FLOAT_REL_TOLERANCE``/``FLOAT_ABS_TOLERANCE`` of it (Redis's INCRBYFLOAT uses
  long double and answers text, kv's uses a 64-bit float, as docs/commands.md says);
  null is null on both sides (Redis's nil bulk and nil array).
- Integer replies (counts, lengths, LPOS's indices) stay integers on both sides.
- HGETALL: kv's map, and Redis's flat ``[field, value, ...]`` list turned into a dict.
- KEYS and a whole SCAN iteration: compared as sets of key names (SCAN's cursors
  differ on purpose; kv must also return each key once, which is checked).
- TTL and EXPIRETIME agree within ``TTL_TOLERANCE_S``, PTTL and PEXPIRETIME within
  ``TTL_TOLERANCE_MS`` (the two servers read their clocks at slightly different
  moments); the answers -1 and -2 must be equal exactly.
- HKEYS, HVALS, LRANGE, MGET and HMGET are compared in order: the hashes stay small,
  so Redis keeps them in insertion order (listpack), as kv always does.
- Errors: both sides must fail. kv's code is compared with the code a Redis message
  maps to in ``REDIS_ERROR_KINDS`` (``WRONGTYPE ...`` is WRONGTYPE, ``no such key``
  NOKEY, ``value is not an integer or out of range`` NOTINTEGER, ``invalid expire
  time`` OUTOFRANGE, ...); a Redis message missing from the table only requires kv
  to fail too. Messages are never compared.

Documented kv differences the machine does not send to Redis
------------------------------------------------------------
docs/commands.md says where typed values make kv answer differently. In exactly
these cases, found by asking kv for the value's type first (OBJECT ENCODING, or
HGET for a field), the command goes to kv alone and kv must answer the documented
error (which changes nothing, so both servers stay equal):

- APPEND, SETRANGE (offset >= 0), STRLEN and GETRANGE on a key holding an integer or
  a float: WRONGTYPE (Redis would treat the number's digits as bytes);
- INCR, DECR, INCRBY and DECRBY (with a valid increment) on a key holding a float:
  NOTINTEGER (Redis would accept a float whose text looks integral, such as "7");
- HSTRLEN on a field holding an integer or a float: WRONGTYPE;
- HINCRBY (with a valid increment) on a field holding a float: NOTINTEGER.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from integration_helpers import RedisProcess, ServerProcess
from kv_client import Client
from kv_protocol.errors import ErrorCode, NotIntegerError, ServerError
from protocol_helpers import same
from protocol_helpers import values as any_values

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

FLOAT_REL_TOLERANCE: Final = 1e-9
FLOAT_ABS_TOLERANCE: Final = 1e-6
"""Room for long double against double over a few dozen additions of modest floats."""
TTL_TOLERANCE_S: Final = 1
TTL_TOLERANCE_MS: Final = 500
"""Each server reads its own clock at its own moment; a loaded CI machine adds delay."""

FAR_STEP_S: Final = 100_000
"""Far relative times are multiples of this (a day and more), so nothing expires mid-run."""
FAR_ABSOLUTE_OFFSET_S: Final = FAR_STEP_S // 2
"""Absolute future times sit halfway between relative ones: their order never depends on timing."""

DIFFERENTIAL_EXAMPLES: Final = settings.default.max_examples
"""100 examples under the default profile, 2 000 under "long" (HYPOTHESIS_PROFILE)."""
DIFFERENTIAL_STEPS: Final = 100
MIN_OPERATIONS: Final = 3_000
"""The issue asks CI for at least a few thousand compared commands per run."""
DIFFERENTIAL_TIMEOUT_S: Final = 900
"""About 8 s under the default profile; the "long" profile runs 20 times as many examples."""
MODEL_EXAMPLES: Final = max(settings.default.max_examples // 4, 10)
MODEL_STEPS: Final = 30

# Reply shapes: how a reply is normalised and compared.
VALUE: Final = "value"
INTEGER: Final = "integer"
MAP: Final = "map"
KEY_SET: Final = "key set"
SECONDS: Final = "seconds"
MILLISECONDS: Final = "milliseconds"
_TOLERANCES: Final = {SECONDS: TTL_TOLERANCE_S, MILLISECONDS: TTL_TOLERANCE_MS}

REDIS_ERROR_KINDS: Final[tuple[tuple[str, str], ...]] = (
    # (start of Redis's message after its "ERR " prefix, kv's code)
    ("WRONGTYPE", ErrorCode.WRONGTYPE),
    ("no such key", ErrorCode.NOKEY),
    ("value is not an integer or out of range", ErrorCode.NOTINTEGER),
    ("hash value is not an integer", ErrorCode.NOTINTEGER),
    ("value is not a valid float", ErrorCode.NOTFLOAT),
    ("hash value is not a float", ErrorCode.NOTFLOAT),
    ("increment or decrement would overflow", ErrorCode.OUTOFRANGE),
    ("decrement would overflow", ErrorCode.OUTOFRANGE),
    ("increment would produce NaN or Infinity", ErrorCode.OUTOFRANGE),
    ("index out of range", ErrorCode.OUTOFRANGE),
    ("offset is out of range", ErrorCode.OUTOFRANGE),
    ("value is out of range, must be positive", ErrorCode.OUTOFRANGE),
    ("invalid expire time in", ErrorCode.OUTOFRANGE),
    ("RANK can't be zero", ErrorCode.OUTOFRANGE),
    ("COUNT can't be negative", ErrorCode.OUTOFRANGE),
    ("MAXLEN can't be negative", ErrorCode.OUTOFRANGE),
    ("string exceeds maximum allowed size", ErrorCode.TOOBIG),
    ("syntax error", ErrorCode.SYNTAX),
    ("source and destination objects are the same", ErrorCode.ERR),
    ("wrong number of arguments", ErrorCode.ERR),
)


# The common form.


@dataclass(frozen=True)
class Approx:
    """A kv float; the Redis side must be text of a float close to it."""

    value: float


@dataclass(frozen=True)
class Failed:
    """An error reply: kv's code, or the code Redis's message maps to (None: not mapped)."""

    kind: str | None


def _kv_value(value: object) -> object:
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return Approx(value)
    if type(value) is list:
        return [_kv_value(item) for item in value]
    return value  # text and null as they are; anything else cannot match Redis's form


def _redis_value(value: object) -> object:
    if type(value) is bytes:
        return value.decode("utf-8", errors="backslashreplace")
    if type(value) is list:
        return [_redis_value(item) for item in value]
    return value


def normalise_kv(shape: str, reply: object) -> object:
    """kv's reply in the common form, for a reply of ``shape``."""
    if isinstance(reply, ServerError):
        return Failed(str(reply.code))
    if shape == VALUE:
        return _kv_value(reply)
    if shape == MAP:
        assert type(reply) is dict, reply
        return {key: _kv_value(value) for key, value in reply.items()}
    if shape == KEY_SET:
        assert type(reply) is list, reply
        assert len(set(reply)) == len(reply), f"kv answered a key twice: {reply!r}"
        return frozenset(reply)
    return reply


def redis_error_kind(message: str) -> str | None:
    """kv's code for a Redis error message, or None when the table has no entry."""
    message = message.removeprefix("ERR ")
    return next((kind for start, kind in REDIS_ERROR_KINDS if message.startswith(start)), None)


def normalise_redis(shape: str, reply: object) -> object:
    """Redis's reply in the common form, for a reply of ``shape``."""
    if isinstance(reply, redis.exceptions.ResponseError):
        return Failed(redis_error_kind(str(reply)))
    if shape == VALUE:
        return _redis_value(reply)
    if shape == MAP:
        assert type(reply) is list and len(reply) % 2 == 0, reply
        flat = _redis_value(reply)
        assert isinstance(flat, list)
        return dict(zip(flat[::2], flat[1::2], strict=True))
    if shape == KEY_SET:
        assert type(reply) is list, reply
        return frozenset(_redis_value(reply))  # type: ignore[arg-type]
    return reply


def agree(kv: object, red: object, tolerance: int = 0) -> bool:
    """Whether two replies in the common form mean the same."""
    if isinstance(kv, Failed) or isinstance(red, Failed):
        return (isinstance(kv, Failed) and isinstance(red, Failed)
                and (red.kind is None or kv.kind == red.kind))
    if isinstance(kv, Approx):
        try:
            number = float(red)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return type(red) is str and math.isclose(kv.value, number, rel_tol=FLOAT_REL_TOLERANCE,
                                                  abs_tol=FLOAT_ABS_TOLERANCE)
    if type(kv) is not type(red):
        return False
    if isinstance(kv, list):
        assert isinstance(red, list)
        return len(kv) == len(red) and all(agree(a, b, tolerance) for a, b in zip(kv, red, strict=True))
    if isinstance(kv, dict):
        assert isinstance(red, dict)
        return kv.keys() == red.keys() and all(agree(kv[k], red[k], tolerance) for k in kv)
    if tolerance and isinstance(kv, int) and isinstance(red, int) and min(kv, red) >= 0:
        return abs(kv - red) <= tolerance
    return kv == red


def redis_argument(arg: object) -> str:
    """What Redis receives for a generated argument: its text."""
    if type(arg) is float:
        return repr(arg)
    return str(arg)


# Generators.

KEY_NAMES: Final = tuple(f"k{i}" for i in range(6))
FIELD_NAMES: Final = ("f0", "f1", "f2", "f3")

keys = st.sampled_from(KEY_NAMES)


def _family_keys(*home: str, weight: int) -> st.SearchStrategy[str]:
    """Keys for one family: its home keys ``weight`` times as likely as the others.

    Every family still reaches every key (so WRONGTYPE paths run often), but lists
    and hashes live long enough to grow instead of being overwritten at once.
    """
    return st.sampled_from([*home * weight, *KEY_NAMES])


list_keys = _family_keys("k0", "k1", weight=8)
hash_keys = _family_keys("k2", "k3", weight=8)
string_keys = _family_keys("k4", "k5", weight=4)
overwriting_keys = _family_keys("k4", "k5", weight=8)
"""For SET and the others that replace a list or a hash without a WRONGTYPE."""
fields = st.sampled_from(FIELD_NAMES)
texts = st.text(alphabet="abcxyz", max_size=4)
elements = st.sampled_from(["a", "b", "c", "ab", ""])
INT64_FAR_ENDS: Final = (INT64_MIN + 1, INT64_MAX)
"""Index and count edges. Not INT64_MIN, whose negation overflows in Redis's C (its
answers there are undefined behaviour), nor integers outside int64, which Redis refuses
and kv accepts (see test_integer_arguments_outside_int64)."""
small_indices = st.integers(-8, 8)
indices = small_indices | st.sampled_from(INT64_FAR_ENDS)
counts = st.integers(-3, 4) | st.sampled_from(INT64_FAR_ENDS)
offsets = st.integers(-1, 8) | st.sampled_from([2**40, INT64_MAX])
"""SETRANGE offsets: small, or past both servers' size limits (kv's 64 MiB frame and
Redis's 512 MiB differ on purpose, so nothing in between is generated)."""
INT64_EDGES: Final = (INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX)
OUT_OF_INT64: Final = (INT64_MIN - 1, INT64_MAX + 1, 2**64)
counters = st.integers(-1000, 1000) | st.sampled_from(INT64_EDGES) | st.integers(INT64_MIN, INT64_MAX)
increments = counters | st.sampled_from(OUT_OF_INT64)
modest_floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
float_increments = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False) | st.integers(-1000, 1000)
scalars = texts | counters | st.sampled_from(OUT_OF_INT64) | modest_floats
hash_values = texts | st.integers(-1000, 1000) | st.sampled_from(INT64_EDGES) | modest_floats
patterns = st.sampled_from(["*", "k?", "k[0-2]", "k[^0-2]", "*[135]", "x*", "k\\*"])


@dataclass(frozen=True)
class Far:
    """A relative time of ``step`` * FAR_STEP_S seconds (plus a unique count of seconds)."""

    step: int


@dataclass(frozen=True)
class At:
    """An absolute future time: the example's base + FAR_ABSOLUTE_OFFSET_S + step * FAR_STEP_S."""

    step: int


# Relative amounts: far ones, ones that delete at once (EXPIRE) or are refused (SET EX),
# and the edges of Redis's overflow checks.
relative_times = (
    st.builds(Far, st.integers(1, 5))
    | st.sampled_from([0, -1, -100])
    | st.sampled_from([INT64_MIN, INT64_MIN // 1000, INT64_MAX // 1000, INT64_MAX // 1000 + 1, INT64_MAX])
)
# Absolute times: the far future, the past (1970 and 2001), and the edges.
absolute_times = (
    st.builds(At, st.integers(0, 4))
    | st.sampled_from([1, 1_000_000_000, 0, -1])
    | st.sampled_from([INT64_MAX // 1000, INT64_MAX // 1000 + 1, INT64_MAX])
)
conditions = st.sampled_from([None, "NX", "XX", "GT", "LT"])


@dataclass
class Tally:
    """What one run executed: compared commands, kv-only checks of documented differences."""

    compared: int = 0
    kv_only: int = 0


class DifferentialMachine(RuleBasedStateMachine):
    """Random commands over six keys, every family mixed, each reply compared."""

    def __init__(self, kv: Client, red: redis.Redis, tally: Tally) -> None:
        super().__init__()
        self.kv, self.red, self.tally = kv, red, tally
        self.history: list[str] = []
        self.unique = itertools.count(1)
        self.base_s = int(time.time())
        kv.execute_command("FLUSHALL")
        red.execute_command("FLUSHALL")

    # Running commands.

    def _kv(self, argv: tuple[object, ...]) -> object:
        try:
            return self.kv.execute_command(*argv)
        except ServerError as exc:
            return exc

    def _redis(self, argv: tuple[object, ...]) -> object:
        try:
            return self.red.execute_command(*(redis_argument(arg) for arg in argv))
        except redis.exceptions.ResponseError as exc:
            return exc

    def _fail(self, what: str) -> str:
        steps = "\n  ".join(self.history[-40:])
        return f"{what}\ncommands of this example (last 40):\n  {steps}"

    def both(self, shape: str, *argv: object) -> object:
        """Run ``argv`` on both servers, check that the replies agree; kv's common form."""
        kv_reply, redis_reply = self._kv(argv), self._redis(argv)
        self.history.append(f"{' '.join(map(repr, argv))}  -> kv {kv_reply!r}, redis {redis_reply!r}")
        kv_form, redis_form = normalise_kv(shape, kv_reply), normalise_redis(shape, redis_reply)
        assert agree(kv_form, redis_form, _TOLERANCES.get(shape, 0)), self._fail(
            f"MISMATCH on {argv!r}: kv {kv_reply!r} ({kv_form!r}), redis {redis_reply!r} ({redis_form!r})")
        self.tally.compared += 1
        return kv_form

    def kv_only(self, code: str, *argv: object) -> None:
        """A documented difference: kv alone must answer error ``code``."""
        reply = self._kv(argv)
        self.history.append(f"{' '.join(map(repr, argv))}  -> kv {reply!r} (kv only: documented)")
        assert isinstance(reply, ServerError) and reply.code == code, self._fail(
            f"kv should answer {code} to {argv!r} (docs/commands.md), got {reply!r}")
        self.tally.kv_only += 1

    def kv_kind(self, key: str) -> str | None:
        """kv's OBJECT ENCODING of a key: int, float, text, deque, dict ... or None."""
        found: str | None = self.kv.execute_command("OBJECT", "ENCODING", key)
        return found

    def kv_field_type(self, key: str, field: str) -> type | None:
        """The type of a hash field's value in kv, or None if the key is not a hash."""
        try:
            return type(self.kv.execute_command("HGET", key, field))
        except ServerError:
            return None

    def seconds(self, amount: object, *, milliseconds: bool) -> int:
        """The argument for a generated time, in the command's unit."""
        scale = 1000 if milliseconds else 1
        if isinstance(amount, Far):
            return (amount.step * FAR_STEP_S + next(self.unique)) * scale
        if isinstance(amount, At):
            return (self.base_s + FAR_ABSOLUTE_OFFSET_S + amount.step * FAR_STEP_S) * scale
        assert type(amount) is int
        return amount

    @staticmethod
    def now_in(word: str) -> int:
        """The current Unix time in the unit of an expiry option."""
        return int(time.time() * 1000) if word.startswith("P") else int(time.time())

    def expiry_option(self, option: tuple[str, object] | None) -> list[object]:
        if option is None:
            return []
        word, amount = option
        if word in ("KEEPTTL", "PERSIST"):
            return [word]
        return [word, self.seconds(amount, milliseconds=word.startswith("P"))]

    # Strings.

    @rule(key=overwriting_keys, value=scalars,
          expiry=st.none() | st.tuples(st.sampled_from(["EX", "PX"]), relative_times)
          | st.tuples(st.sampled_from(["EXAT", "PXAT"]), absolute_times) | st.just(("KEEPTTL", None)),
          condition=st.sampled_from([None, "NX", "XX"]), get=st.booleans())
    def set_(self, key: str, value: object, expiry: tuple[str, object] | None, condition: str | None,
             get: bool) -> None:
        argv = ["SET", key, value, *self.expiry_option(expiry)]
        argv += [condition] if condition else []
        argv += ["GET"] if get else []
        self.both(VALUE, *argv)
        if expiry is not None and expiry[0] in ("EXAT", "PXAT") and 0 < argv[4] < self.now_in(expiry[0]):
            # kv deletes the key at once (docs/commands.md); Redis 7.0 keeps it, unreadable,
            # until a read or its active expiry removes it, and DBSIZE would count it.
            self.both(INTEGER, "EXISTS", key)

    @rule(command=st.sampled_from(["GET", "GETDEL"]), key=string_keys)
    def get(self, command: str, key: str) -> None:
        self.both(VALUE, command, key)

    @rule(key=overwriting_keys, value=scalars)
    def getset(self, key: str, value: object) -> None:
        self.both(VALUE, "GETSET", key, value)

    @rule(key=string_keys, option=st.none() | st.just(("PERSIST", None))
          | st.tuples(st.sampled_from(["EX", "PX"]), relative_times)
          | st.tuples(st.sampled_from(["EXAT", "PXAT"]), absolute_times))
    def getex(self, key: str, option: tuple[str, object] | None) -> None:
        self.both(VALUE, "GETEX", key, *self.expiry_option(option))

    @rule(key=string_keys, value=scalars)
    def setnx(self, key: str, value: object) -> None:
        self.both(INTEGER, "SETNX", key, value)

    @rule(command=st.sampled_from(["SETEX", "PSETEX"]), key=overwriting_keys, amount=relative_times,
          value=scalars)
    def setex(self, command: str, key: str, amount: object, value: object) -> None:
        self.both(VALUE, command, key, self.seconds(amount, milliseconds=command == "PSETEX"), value)

    @rule(pairs=st.lists(st.tuples(overwriting_keys, scalars), min_size=1, max_size=3))
    def mset(self, pairs: list[tuple[str, object]]) -> None:
        self.both(VALUE, "MSET", *itertools.chain.from_iterable(pairs))

    @rule(names=st.lists(string_keys, min_size=1, max_size=4))
    def mget(self, names: list[str]) -> None:
        self.both(VALUE, "MGET", *names)

    def _numbers_are_not_strings(self, key: str) -> bool:
        return self.kv_kind(key) in ("int", "float")

    @rule(key=string_keys, suffix=texts)
    def append(self, key: str, suffix: str) -> None:
        if self._numbers_are_not_strings(key):
            self.kv_only(ErrorCode.WRONGTYPE, "APPEND", key, suffix)
        else:
            self.both(INTEGER, "APPEND", key, suffix)

    @rule(key=string_keys)
    def strlen(self, key: str) -> None:
        if self._numbers_are_not_strings(key):
            self.kv_only(ErrorCode.WRONGTYPE, "STRLEN", key)
        else:
            self.both(INTEGER, "STRLEN", key)

    @rule(key=string_keys, offset=offsets, piece=texts)
    def setrange(self, key: str, offset: int, piece: str) -> None:
        if offset >= 0 and self._numbers_are_not_strings(key):
            self.kv_only(ErrorCode.WRONGTYPE, "SETRANGE", key, offset, piece)
        else:
            self.both(INTEGER, "SETRANGE", key, offset, piece)

    @rule(key=string_keys, start=indices, end=indices)
    def getrange(self, key: str, start: int, end: int) -> None:
        if self._numbers_are_not_strings(key):
            self.kv_only(ErrorCode.WRONGTYPE, "GETRANGE", key, start, end)
        else:
            self.both(VALUE, "GETRANGE", key, start, end)

    # Counters.

    def _counter(self, key: str, *argv: object) -> None:
        increment = argv[2] if len(argv) > 2 else 1
        valid = (type(increment) is int and INT64_MIN <= increment <= INT64_MAX
                 and not (argv[0] == "DECRBY" and increment == INT64_MIN))
        if valid and self.kv_kind(key) == "float":
            self.kv_only(ErrorCode.NOTINTEGER, *argv)
        else:
            self.both(INTEGER, *argv)

    @rule(command=st.sampled_from(["INCR", "DECR"]), key=string_keys)
    def incr(self, command: str, key: str) -> None:
        self._counter(key, command, key)

    @rule(command=st.sampled_from(["INCRBY", "DECRBY"]), key=string_keys, increment=increments)
    def incrby(self, command: str, key: str, increment: int) -> None:
        self._counter(key, command, key, increment)

    @rule(key=string_keys, increment=float_increments)
    def incrbyfloat(self, key: str, increment: float) -> None:
        self.both(VALUE, "INCRBYFLOAT", key, increment)

    # Keys.

    @rule(command=st.sampled_from(["DEL", "UNLINK", "EXISTS", "TOUCH"]),
          names=st.lists(keys, min_size=1, max_size=3))
    def count_keys(self, command: str, names: list[str]) -> None:
        self.both(INTEGER, command, *names)

    @rule(key=keys)
    def type_(self, key: str) -> None:
        self.both(VALUE, "TYPE", key)

    @rule(command=st.sampled_from(["RENAME", "RENAMENX"]), source=keys, destination=keys)
    def rename(self, command: str, source: str, destination: str) -> None:
        self.both(VALUE if command == "RENAME" else INTEGER, command, source, destination)

    @rule(source=keys, destination=keys, replace=st.booleans())
    def copy(self, source: str, destination: str, replace: bool) -> None:
        self.both(INTEGER, "COPY", source, destination, *(["REPLACE"] if replace else []))

    @rule()
    def dbsize(self) -> None:
        self.both(INTEGER, "DBSIZE")

    @rule(pattern=patterns)
    def keys_(self, pattern: str) -> None:
        self.both(KEY_SET, "KEYS", pattern)

    @rule(count=st.integers(1, 7), pattern=st.none() | patterns,
          kind=st.sampled_from([None, "string", "list", "hash"]))
    def scan(self, count: int, pattern: str | None, kind: str | None) -> None:
        options: list[object] = ["COUNT", count]
        options += ["MATCH", pattern] if pattern is not None else []
        options += ["TYPE", kind] if kind is not None else []
        kv_keys: list[object] = []
        redis_keys: set[object] = set()
        cursor: object = 0
        while True:
            cursor, batch = self.kv.execute_command("SCAN", cursor, *options)
            kv_keys += batch
            if cursor == 0:
                break
        cursor = b"0"
        while True:
            cursor, batch = self.red.execute_command("SCAN", cursor, *options)
            redis_keys |= set(normalise_redis(KEY_SET, batch))  # type: ignore[arg-type]
            if cursor == b"0":
                break
        self.history.append(f"SCAN ... {options!r}  -> kv {kv_keys!r}, redis {sorted(redis_keys)!r}")
        assert normalise_kv(KEY_SET, kv_keys) == redis_keys, self._fail(
            f"MISMATCH on a SCAN iteration with {options!r}: kv {kv_keys!r}, redis {redis_keys!r}")
        self.tally.compared += 1

    # Expiry.

    @rule(command=st.sampled_from(["EXPIRE", "PEXPIRE"]), key=keys, amount=relative_times,
          condition=conditions)
    def expire(self, command: str, key: str, amount: object, condition: str | None) -> None:
        argv = [command, key, self.seconds(amount, milliseconds=command == "PEXPIRE")]
        self.both(INTEGER, *argv, *([condition] if condition else []))

    @rule(command=st.sampled_from(["EXPIREAT", "PEXPIREAT"]), key=keys, amount=absolute_times,
          condition=conditions)
    def expireat(self, command: str, key: str, amount: object, condition: str | None) -> None:
        argv = [command, key, self.seconds(amount, milliseconds=command == "PEXPIREAT")]
        self.both(INTEGER, *argv, *([condition] if condition else []))

    @rule(command=st.sampled_from(["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]), key=keys)
    def ttl(self, command: str, key: str) -> None:
        self.both(MILLISECONDS if command.startswith("P") else SECONDS, command, key)

    @rule(key=keys)
    def persist(self, key: str) -> None:
        self.both(INTEGER, "PERSIST", key)

    # Lists.

    @rule(key=list_keys, items=st.lists(elements, min_size=1, max_size=4))
    def lpush(self, key: str, items: list[str]) -> None:
        self.both(INTEGER, "LPUSH", key, *items)

    @rule(key=list_keys, items=st.lists(elements, min_size=1, max_size=4))
    def rpush(self, key: str, items: list[str]) -> None:
        self.both(INTEGER, "RPUSH", key, *items)

    @rule(command=st.sampled_from(["LPUSHX", "RPUSHX"]), key=list_keys,
          items=st.lists(elements, min_size=1, max_size=4))
    def pushx(self, command: str, key: str, items: list[str]) -> None:
        self.both(INTEGER, command, key, *items)

    @rule(command=st.sampled_from(["LPOP", "RPOP"]), key=list_keys, count=st.none() | counts)
    def pop(self, command: str, key: str, count: int | None) -> None:
        self.both(VALUE, command, key, *([] if count is None else [count]))

    @rule(key=list_keys)
    def llen(self, key: str) -> None:
        self.both(INTEGER, "LLEN", key)

    @rule(key=list_keys, index=indices)
    def lindex(self, key: str, index: int) -> None:
        self.both(VALUE, "LINDEX", key, index)

    @rule(command=st.sampled_from(["LRANGE", "LTRIM"]), key=list_keys, start=indices, stop=indices)
    def lrange(self, command: str, key: str, start: int, stop: int) -> None:
        self.both(VALUE, command, key, start, stop)

    @rule(key=list_keys, index=indices, item=elements)
    def lset(self, key: str, index: int, item: str) -> None:
        self.both(VALUE, "LSET", key, index, item)

    @rule(key=list_keys, count=counts, item=elements)
    def lrem(self, key: str, count: int, item: str) -> None:
        self.both(INTEGER, "LREM", key, count, item)

    @rule(key=list_keys, where=st.sampled_from(["BEFORE", "AFTER"]), pivot=elements, item=elements)
    def linsert(self, key: str, where: str, pivot: str, item: str) -> None:
        self.both(INTEGER, "LINSERT", key, where, pivot, item)

    @rule(key=list_keys, item=elements, rank=st.none() | st.integers(-3, 3) | st.sampled_from(INT64_FAR_ENDS),
          count=st.none() | counts, maxlen=st.none() | counts)
    def lpos(self, key: str, item: str, rank: int | None, count: int | None, maxlen: int | None) -> None:
        options: list[object] = []
        for word, value in (("RANK", rank), ("COUNT", count), ("MAXLEN", maxlen)):
            options += [] if value is None else [word, value]
        self.both(INTEGER, "LPOS", key, item, *options)

    @rule(source=list_keys, destination=list_keys, wherefrom=st.sampled_from(["LEFT", "RIGHT"]),
          whereto=st.sampled_from(["LEFT", "RIGHT"]))
    def lmove(self, source: str, destination: str, wherefrom: str, whereto: str) -> None:
        self.both(VALUE, "LMOVE", source, destination, wherefrom, whereto)

    @rule(source=list_keys, destination=list_keys)
    def rpoplpush(self, source: str, destination: str) -> None:
        self.both(VALUE, "RPOPLPUSH", source, destination)

    # Hashes.

    @rule(key=hash_keys, pairs=st.lists(st.tuples(fields, hash_values), min_size=1, max_size=3))
    def hset(self, key: str, pairs: list[tuple[str, object]]) -> None:
        self.both(INTEGER, "HSET", key, *itertools.chain.from_iterable(pairs))

    @rule(key=hash_keys, field=fields, value=hash_values)
    def hsetnx(self, key: str, field: str, value: object) -> None:
        self.both(INTEGER, "HSETNX", key, field, value)

    @rule(key=hash_keys, field=fields)
    def hget(self, key: str, field: str) -> None:
        self.both(VALUE, "HGET", key, field)

    @rule(command=st.sampled_from(["HMGET", "HDEL"]), key=hash_keys,
          names=st.lists(fields, min_size=1, max_size=3))
    def hmget(self, command: str, key: str, names: list[str]) -> None:
        self.both(VALUE if command == "HMGET" else INTEGER, command, key, *names)

    @rule(key=hash_keys, field=fields)
    def hexists(self, key: str, field: str) -> None:
        self.both(INTEGER, "HEXISTS", key, field)

    @rule(command=st.sampled_from(["HLEN", "HKEYS", "HVALS", "HGETALL"]), key=hash_keys)
    def hash_whole(self, command: str, key: str) -> None:
        shape = {"HLEN": INTEGER, "HGETALL": MAP}.get(command, VALUE)
        self.both(shape, command, key)

    @rule(key=hash_keys, field=fields)
    def hstrlen(self, key: str, field: str) -> None:
        if self.kv_field_type(key, field) in (int, float):
            self.kv_only(ErrorCode.WRONGTYPE, "HSTRLEN", key, field)
        else:
            self.both(INTEGER, "HSTRLEN", key, field)

    @rule(key=hash_keys, field=fields, increment=increments)
    def hincrby(self, key: str, field: str, increment: int) -> None:
        valid = INT64_MIN <= increment <= INT64_MAX
        if valid and self.kv_field_type(key, field) is float:
            self.kv_only(ErrorCode.NOTINTEGER, "HINCRBY", key, field, increment)
        else:
            self.both(INTEGER, "HINCRBY", key, field, increment)

    @rule(key=hash_keys, field=fields, increment=float_increments)
    def hincrbyfloat(self, key: str, field: str, increment: float) -> None:
        self.both(VALUE, "HINCRBYFLOAT", key, field, increment)


@pytest.fixture(scope="module")
def kv(module_kv_server: ServerProcess) -> Iterator[Client]:
    with module_kv_server.client(name="differential", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def red(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    client = redis.Redis(host=redis_server.host, port=redis_server.port, protocol=2,
                         decode_responses=False, socket_timeout=30)
    client.response_callbacks.clear()  # raw RESP2 replies: OK stays b"OK", HGETALL a flat list
    yield client
    client.close()


@pytest.mark.timeout(DIFFERENTIAL_TIMEOUT_S)
def test_kv_answers_as_redis_does(kv: Client, red: redis.Redis) -> None:
    tally = Tally()
    run_state_machine_as_test(
        lambda: DifferentialMachine(kv, red, tally),
        settings=settings(max_examples=DIFFERENTIAL_EXAMPLES, stateful_step_count=DIFFERENTIAL_STEPS,
                          deadline=None),
    )
    assert tally.compared >= MIN_OPERATIONS, tally


# Integer arguments outside int64: kv refuses them as Redis does (NOTINTEGER), checked
# by the command table's INTEGER kind before any command runs. The machine above
# keeps its integers inside int64, so these are checked here, each on its own.

OUTSIDE_INT64: Final[dict[str, list[tuple[str, tuple[object, ...]]]]] = {
    "expiry": [(VALUE, ("SET", "s", "v", "EX", 2**63)), (INTEGER, ("EXPIRE", "s", 2**63)),
               (INTEGER, ("PEXPIREAT", "s", -(2**63) - 1))],
    "string-offsets": [(VALUE, ("GETRANGE", "s", 0, 2**63)), (INTEGER, ("SETRANGE", "s", 2**63, "x"))],
    "list-indices-and-counts": [
        (VALUE, ("LRANGE", "l", 0, 2**63)), (VALUE, ("LINDEX", "l", -(2**63) - 1)),
        (VALUE, ("LSET", "l", 2**63, "x")), (VALUE, ("LTRIM", "l", 0, 2**64)),
        (INTEGER, ("LREM", "l", 2**63, "a")), (INTEGER, ("LPOS", "l", "a", "RANK", 2**63)),
    ],
    "scan-count": [(VALUE, ("SCAN", 0, "COUNT", 2**63)), (VALUE, ("SCAN", 0, "COUNT", 0))],
    "increments": [(INTEGER, ("INCRBY", "s", 2**63)), (INTEGER, ("HINCRBY", "s", "f", 2**63)),
                   (INTEGER, ("HINCRBY", "l", "f", -(2**63) - 1))],
}


@pytest.mark.parametrize("group", list(OUTSIDE_INT64))
def test_integer_arguments_outside_int64(kv: Client, red: redis.Redis, group: str) -> None:
    mismatches = []
    for shape, argv in OUTSIDE_INT64[group]:
        machine = DifferentialMachine(kv, red, Tally())  # flushes both servers
        machine.both(VALUE, "SET", "s", "abc")
        machine.both(INTEGER, "RPUSH", "l", "a", "b", "a")
        try:
            machine.both(shape, *argv)
            machine.both(VALUE, "LRANGE", "l", 0, -1)  # and nothing changed on either side
            machine.both(VALUE, "GET", "s")
        except AssertionError as exc:
            mismatches.append(str(exc).partition("\n")[0])
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("argv", [("LPOP", "l", 2**63), ("LPOS", "l", "a", "COUNT", 2**63),
                                  ("LPOS", "l", "a", "MAXLEN", 2**63)])
def test_counts_outside_int64_are_refused_with_kvs_own_code(kv: Client, red: redis.Redis,
                                                            argv: tuple[object, ...]) -> None:
    # Both refuse. Redis words these as "must be positive" / "can't be negative" (its
    # parser fails, then it reports the sign check); kv says what is wrong: NOTINTEGER.
    for client in (kv, red):
        client.execute_command("DEL", "l")
        client.execute_command("RPUSH", "l", "a", "b")
    with pytest.raises(redis.ResponseError):
        red.execute_command(*argv)
    with pytest.raises(NotIntegerError):
        kv.execute_command(*argv)
    assert kv.execute_command("LLEN", "l") == 2


# The mapping itself, so that a loose rule cannot hide behind the machine.


@pytest.mark.parametrize(
    ("kv_reply", "redis_reply", "shape", "agrees"),
    [
        (5, b"5", VALUE, True),
        (5, b"05", VALUE, False),
        ("5", b"5", VALUE, True),
        (6.5, b"6.5", VALUE, True),
        (7.0, b"7", VALUE, True),
        (7.0, b"7.1", VALUE, False),
        (None, None, VALUE, True),
        (None, b"", VALUE, False),
        ("OK", b"OK", VALUE, True),
        (["a", 1], [b"a", b"1"], VALUE, True),
        (1, 1, INTEGER, True),
        (1, b"1", INTEGER, False),
        ({"f": 1}, [b"f", b"1"], MAP, True),
        ({"f": 1}, [b"f", b"2"], MAP, False),
        (["k1", "k2"], [b"k2", b"k1"], KEY_SET, True),
        (100, 101, SECONDS, True),
        (100, 102, SECONDS, False),
        (-1, 0, SECONDS, False),
        (-2, -1, MILLISECONDS, False),
    ],
)
def test_normalised_replies(kv_reply: object, redis_reply: object, shape: str, agrees: bool) -> None:
    kv_form, redis_form = normalise_kv(shape, kv_reply), normalise_redis(shape, redis_reply)
    assert agree(kv_form, redis_form, _TOLERANCES.get(shape, 0)) is agrees


def test_error_kinds() -> None:
    from kv_protocol.errors import WrongTypeError

    wrongtype = redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind "
                                               "of value")
    assert agree(normalise_kv(VALUE, WrongTypeError()), normalise_redis(VALUE, wrongtype))
    assert not agree(normalise_kv(VALUE, NotIntegerError()), normalise_redis(VALUE, wrongtype))
    assert not agree(normalise_kv(VALUE, "x"), normalise_redis(VALUE, wrongtype))
    assert redis_error_kind("no such key") == ErrorCode.NOKEY
    assert redis_error_kind("ERR invalid expire time in 'set' command") == ErrorCode.OUTOFRANGE
    assert redis_error_kind("something new") is None


# Commands Redis lacks, against Python models.


def _utf8(name: str | bytes) -> bytes:
    return name.encode("utf-8") if isinstance(name, str) else name


name_parts = st.sampled_from(["a", "b", "é", "ü"])
hash_fields = (st.lists(name_parts, max_size=3).map("".join)
               | st.lists(st.sampled_from([b"a", b"b", "é".encode(), b"\xc3", b"\xff"]), max_size=3)
               .map(b"".join))


class HfindMachine(RuleBasedStateMachine):
    """HFIND on one hash against a dict: fields whose UTF-8 name contains the substring."""

    def __init__(self, kv: Client) -> None:
        super().__init__()
        self.kv = kv
        self.model: dict[str | bytes, object] = {}
        kv.execute_command("FLUSHALL")
        kv.execute_command("SET", "text", "not a hash")

    @rule(field=hash_fields, value=st.integers(0, 9))
    def hset(self, field: str | bytes, value: int) -> None:
        self.kv.execute_command("HSET", "h", field, value)
        self.model[field] = value

    @rule(field=hash_fields)
    def hdel(self, field: str | bytes) -> None:
        assert self.kv.execute_command("HDEL", "h", field) == int(self.model.pop(field, None) is not None)

    @rule(part=hash_fields)
    def hfind(self, part: str | bytes) -> None:
        expected = [field for field in self.model if _utf8(part) in _utf8(field)]
        assert same(self.kv.execute_command("HFIND", "h", part), expected)

    @rule(part=hash_fields)
    def hfind_elsewhere(self, part: str | bytes) -> None:
        assert self.kv.execute_command("HFIND", "missing", part) == []
        with pytest.raises(ServerError) as info:
            self.kv.execute_command("HFIND", "text", part)
        assert info.value.code == ErrorCode.WRONGTYPE

    @invariant()
    def fields_in_first_insertion_order(self) -> None:
        assert same(self.kv.execute_command("HKEYS", "h"), list(self.model))


LIST_KEYS: Final = ("a", "b", "c")


@dataclass(frozen=True)
class StringValue:
    """A model key that holds a string value, not a list."""

    value: object


class LpoprpushMachine(RuleBasedStateMachine):
    """LPOPRPUSH against a dict of lists: head of the source to the tail of the destination."""

    def __init__(self, kv: Client) -> None:
        super().__init__()
        self.kv = kv
        self.model: dict[str, list[object] | StringValue] = {}
        kv.execute_command("FLUSHALL")

    @rule(key=st.sampled_from(LIST_KEYS), items=st.lists(any_values, min_size=1, max_size=3))
    def rpush(self, key: str, items: list[object]) -> None:
        current = self.model.get(key)
        if isinstance(current, StringValue):
            with pytest.raises(ServerError) as info:
                self.kv.execute_command("RPUSH", key, *items)
            assert info.value.code == ErrorCode.WRONGTYPE
            return
        self.model[key] = [*(current or []), *items]
        assert self.kv.execute_command("RPUSH", key, *items) == len(self.model[key])  # type: ignore[arg-type]

    @rule(key=st.sampled_from(LIST_KEYS), value=st.integers() | st.text(max_size=3))
    def set_string(self, key: str, value: object) -> None:
        self.kv.execute_command("SET", key, value)
        self.model[key] = StringValue(value)

    @rule(key=st.sampled_from(LIST_KEYS))
    def delete(self, key: str) -> None:
        assert self.kv.execute_command("DEL", key) == int(self.model.pop(key, None) is not None)

    @rule(source=st.sampled_from(LIST_KEYS), destination=st.sampled_from(LIST_KEYS))
    def lpoprpush(self, source: str, destination: str) -> None:
        items, into = self.model.get(source), self.model.get(destination)
        if items is not None and (isinstance(items, StringValue) or isinstance(into, StringValue)):
            with pytest.raises(ServerError) as info:
                self.kv.execute_command("LPOPRPUSH", source, destination)
            assert info.value.code == ErrorCode.WRONGTYPE
            return
        reply = self.kv.execute_command("LPOPRPUSH", source, destination)
        if items is None:
            assert reply is None
            return
        assert isinstance(items, list)
        head = items.pop(0)
        assert same(reply, head)
        if not items:
            del self.model[source]
        tail = self.model.setdefault(destination, [])
        assert isinstance(tail, list)
        tail.append(head)

    @invariant()
    def keys_hold_the_model(self) -> None:
        for key in LIST_KEYS:
            expected = self.model.get(key)
            if expected is None:
                assert self.kv.execute_command("EXISTS", key) == 0
            elif isinstance(expected, StringValue):
                assert same(self.kv.execute_command("GET", key), expected.value)
            else:
                assert same(self.kv.execute_command("LRANGE", key, 0, -1), expected)


_MODEL_SETTINGS: Final = settings(max_examples=MODEL_EXAMPLES, stateful_step_count=MODEL_STEPS, deadline=None)


@pytest.mark.parametrize("machine", [HfindMachine, LpoprpushMachine])
def test_kv_only_commands_against_models(module_kv_server: ServerProcess,
                                         machine: Callable[[Client], RuleBasedStateMachine]) -> None:
    with module_kv_server.client(name="models", timeout=30) as client:
        run_state_machine_as_test(lambda: machine(client), settings=_MODEL_SETTINGS)
