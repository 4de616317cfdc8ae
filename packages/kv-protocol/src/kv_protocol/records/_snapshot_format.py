"""The snapshot file's vocabulary (types, limits, checks) and its writer.

Private: :mod:`kv_protocol.snapshot` documents the format, holds the reader and
re-exports the public names; rule numbers below are that module's. The checks are
plain functions that raise ValueError or return a reason; the reader adds where.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple, TypeAlias

import cbor2

from kv_protocol.framing import DEFAULT_MAX_DEPTH
from kv_protocol.values import Key, Value, describe, is_value, type_name

from . import _files
from .tagged import dumps

Kind: TypeAlias = Literal["string", "list", "hash"]
KINDS: Final = ("string", "list", "hash")
ENCODINGS: Final = ("plaintext", "binary")
FORMAT: Final = "kv-snapshot"
VERSION: Final = 1
MAGIC: Final = b"\xd9\xd9\xf7"
# A header is under 200 bytes; a first line or item longer than this is not one.
MAX_HEADER_BYTES: Final = 4096
HEADER_FIELDS: Final = ("format", "version", "encoding", "entries", "aof_position", "created_ms")
TRAILER_FIELDS: Final = frozenset({"end", "entries", "crc32c"})
_SCALARS: Final = frozenset({str, bytes, int, float, bool, type(None)})
# The entry array is one level, so its value may nest one level less than an item.
_VALUE_DEPTH: Final = DEFAULT_MAX_DEPTH - 1
# Past this many buffered bytes of an unfinished binary item, the reader stops
# decoding it again at every feed and follows its headers instead (item_end).
SCAN_BYTES: Final = 256 * 1024


class SnapshotEntry(NamedTuple):
    """One key (rule 1); a NamedTuple, because a million of them are built at start-up."""

    key: Key
    kind: Kind
    value: Value
    deadline_ms: int | None


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """What a snapshot's header says (rule 2)."""

    encoding: str
    version: int
    entries: int
    aof_position: int
    created_ms: int


class SnapshotFormatError(ValueError):
    """A malformed snapshot, and where it goes wrong.

    ``str()`` reads ``line 3, byte offset 120: <reason>`` for plaintext and
    ``entry 5, byte offset 77: <reason>`` for binary files. ``line`` (plaintext
    only) and ``entry`` count from 1; ``entry`` is None outside entries.
    """

    def __init__(self, reason: str, offset: int, line: int | None = None, entry: int | None = None) -> None:
        super().__init__(reason, offset, line, entry)
        self.reason = reason
        self.offset = offset
        self.line = line
        self.entry = entry

    def __str__(self) -> str:
        return f"{_files.where(self.offset, self.line, self.entry)}: {self.reason}"


def detect_encoding(prefix: bytes) -> str | None:
    """"plaintext" or "binary" from a file's first bytes (3 suffice); None if neither (rule 4)."""
    if prefix[:1] == b"{":
        return "plaintext"
    if prefix[:3] == MAGIC:
        return "binary"
    return None


def entry_problem(key: object, kind: object, value: object, deadline: object, check_values: bool
                  ) -> str | None:
    """Why (key, kind, value, deadline) is not an entry (rule 1), or None if it is one.

    ``check_values`` walks containers with :func:`is_value`; tagged JSON cannot
    produce anything else, CBOR can (tuples as map keys, ``undefined``).
    """
    if type(key) is not str and type(key) is not bytes:
        return f"key must be text or bytes, not {type_name(key)}"
    if deadline is not None and type(deadline) is not int:
        return f"deadline_ms must be an integer or null, not {type_name(deadline)}"
    if kind == "string":
        if check_values and type(value) not in _SCALARS and not is_value(value, _VALUE_DEPTH):
            return f"value is not a kv value nested at most {_VALUE_DEPTH} deep"
    elif kind == "list":
        if type(value) is not list:
            return f"a list's value must be an array, not {type_name(value)}"
        if check_values and not is_value(value, _VALUE_DEPTH):
            return f"list holds something that is not a kv value nested at most {_VALUE_DEPTH} deep"
    elif kind == "hash":
        if type(value) is not dict:
            return f"a hash's value must be a map, not {type_name(value)}"
        for field in value:
            if type(field) is not str and type(field) is not bytes:
                return f"hash fields must be text or bytes, not {type_name(field)}"
        if check_values and not is_value(value, _VALUE_DEPTH):
            return f"hash holds something that is not a kv value nested at most {_VALUE_DEPTH} deep"
    else:
        return f"unknown kind {describe(kind)}: kinds are {', '.join(KINDS)}"
    return None


def parse_header(fields: object, encoding: str) -> SnapshotHeader:
    """The header in ``fields`` (a decoded map) of a file in ``encoding``.

    Raises:
        ValueError: why ``fields`` is not a version 1 header for ``encoding``.
    """
    if type(fields) is not dict or fields.get("format") != FORMAT:
        raise ValueError('not a kv snapshot: the header is not a map with "format": "kv-snapshot"')
    version = fields.get("version")
    if type(version) is not int:
        raise ValueError(f"header: version must be an integer, not {type_name(version)}")
    if version != VERSION:
        raise ValueError(f"unsupported format version {version} (this reader knows {VERSION})")
    if set(fields) != set(HEADER_FIELDS):
        problems = [f"missing field {name!r}" for name in HEADER_FIELDS if name not in fields]
        problems += [f"unexpected field {describe(name)}" for name in fields if name not in HEADER_FIELDS]
        raise ValueError("header: " + ", ".join(problems))
    if fields["encoding"] != encoding:
        raise ValueError(f"header: encoding {describe(fields['encoding'])} in a {encoding} file")
    for name in HEADER_FIELDS[3:]:
        if type(fields[name]) is not int or fields[name] < 0:
            raise ValueError(f"header: {name} must be a non-negative integer, not {describe(fields[name])}")
    return SnapshotHeader(encoding, version, fields["entries"], fields["aof_position"], fields["created_ms"])


def parse_trailer(fields: object, encoding: str) -> tuple[int, int]:
    """(entries, crc32c) from the trailer in ``fields`` (a decoded map).

    Raises:
        ValueError: why ``fields`` is not a trailer.
    """
    if type(fields) is not dict or set(fields) != TRAILER_FIELDS or fields["end"] != FORMAT:
        raise ValueError('expected the trailer {"end": "kv-snapshot", "entries": N, "crc32c": C}')
    stored, count = fields["crc32c"], fields["entries"]
    if type(count) is not int or count < 0:
        raise ValueError(f"trailer: entries must be a non-negative integer, not {describe(count)}")
    if encoding == "binary":
        if type(stored) is not int or not 0 <= stored < 2**32:
            raise ValueError(f"trailer: crc32c must be an unsigned 32-bit integer, not {describe(stored)}")
        return count, stored
    if type(stored) is not str or len(stored) != 8 or stored.strip("0123456789abcdef"):
        raise ValueError(f"trailer: crc32c must be 8 lowercase hex digits, not {describe(stored)}")
    return count, int(stored, 16)


def item_end(view: memoryview, pos: int, end: int, stack: list[int]) -> tuple[int, bool]:
    """Follow one CBOR item's headers from ``pos``: (where to resume, whether it ended there).

    The binary reader decodes an item again from its start whenever bytes arrive;
    for an entry far larger than the chunks it is fed (a hash of millions of
    fields) that is quadratic. This walk reads only the heads of items and resumes
    where it stopped: ``stack``, updated in place, holds how many items each open
    container still needs (-1: until a break). Bytes it does not understand give
    (pos, True), so that the decoder runs and says what is wrong with them.
    """
    while pos < end:
        initial = view[pos]
        major, info = initial >> 5, initial & 31
        if info < 24:
            arg, size = info, 1
        elif info < 28:
            size = 1 + (1 << (info - 24))
            if pos + size > end:
                break
            arg = int.from_bytes(view[pos + 1 : pos + size], "big")
        elif info == 31 and major in (2, 3, 4, 5, 7) and len(stack) < DEFAULT_MAX_DEPTH:
            arg, size = -1, 1
        else:
            return pos, True  # reserved, misplaced or too deep: malformed
        if major == 7 and info == 31:  # a break closes an indefinite container
            if not stack or stack[-1] >= 0:
                return pos, True
            stack.pop()
        elif major <= 1 or major == 7:  # a number or a simple value
            pass
        elif major == 6:  # a tag: its content follows
            pos += size
            continue
        elif major <= 3 and arg >= 0:  # a string
            if pos + size + arg > end:
                break
            size += arg
        elif arg != 0:  # an indefinite string, an array, a map (two items per entry)
            stack.append(-1 if arg < 0 else arg * (2 if major == 5 else 1))
            pos += size
            continue
        pos += size
        while True:  # an item is complete: count it, and close the containers it completes
            if not stack:
                return pos, True
            if stack[-1] < 0:
                break
            stack[-1] -= 1
            if stack[-1]:
                break
            stack.pop()
    return pos, False


class SnapshotWriter:
    """Sans-IO writer: ``header()``, then ``entry()`` (or ``entries()``) per key, then ``trailer()``.

    Each call returns the bytes to append to the file and advances the running
    CRC32C. About 1 µs per small string entry; ``entries()`` encodes a batch at
    about two thirds of that.

    Error handling: every call checks its input and the order of calls, and
    raises ValueError (TypeError for values that are not kv values) instead of
    returning bytes a reader would refuse; the snapshot is then unusable.
    """

    __slots__ = ("_binary", "_crc", "_written", "aof_position", "count", "created_ms", "encoding")

    def __init__(self, encoding: str, entries: int, aof_position: int, created_ms: int) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {describe(encoding)}")
        for name, number in zip(HEADER_FIELDS[3:], (entries, aof_position, created_ms), strict=True):
            if type(number) is not int or number < 0:
                raise ValueError(f"{name} must be a non-negative int, not {describe(number)}")
        self.encoding = encoding
        self.count = entries
        self.aof_position = aof_position
        self.created_ms = created_ms
        self._binary = encoding == "binary"
        self._crc: int | None = None  # None until the header is written
        self._written = 0

    def header(self) -> bytes:
        """The magic (binary) and header; call it first, once."""
        if self._crc is not None:
            raise ValueError("the header is already written")
        numbers = (self.count, self.aof_position, self.created_ms)
        fields = dict(zip(HEADER_FIELDS, (FORMAT, VERSION, self.encoding, *numbers), strict=True))
        data = MAGIC + cbor2.dumps(fields) if self._binary else (dumps(fields) + "\n").encode()
        self._crc = _files.crc32c(data)
        return data

    def entry(self, key: Key, kind: Kind, value: Value, deadline_ms: int | None) -> bytes:
        """One entry (rule 1)."""
        crc = self._started()
        self._check(key, kind, value, deadline_ms, self._written)
        item = [key, kind, value, deadline_ms]
        data = cbor2.dumps(item) if self._binary else (dumps(item) + "\n").encode()
        self._crc = _files.crc32c(data, crc)
        self._written += 1
        return data

    def entries(self, items: Iterable[tuple[Key, Kind, Value, int | None]]) -> bytes:
        """Several entries at once: the bytes :meth:`entry` would give one by one, faster."""
        crc = self._started()
        written = self._written
        check = self._check
        if self._binary:
            out = io.BytesIO()
            encode = cbor2.CBOREncoder(out).encode
            for key, kind, value, deadline_ms in items:
                check(key, kind, value, deadline_ms, written)
                encode([key, kind, value, deadline_ms])
                written += 1
            data = out.getvalue()
        else:
            lines = []
            for key, kind, value, deadline_ms in items:
                check(key, kind, value, deadline_ms, written)
                lines.append(dumps([key, kind, value, deadline_ms]))
                written += 1
            lines.append("")
            data = "\n".join(lines).encode() if written > self._written else b""
        self._crc = _files.crc32c(data, crc)
        self._written = written
        return data

    def trailer(self) -> bytes:
        """The trailer, after exactly as many entries as the header declared."""
        self._started()
        if self._written != self.count:
            raise ValueError(f"{self._written} entries written but the header declared {self.count}")
        if self._binary:
            return cbor2.dumps({"end": FORMAT, "entries": self.count, "crc32c": self._crc})
        return f'{{"end":"{FORMAT}","entries":{self.count},"crc32c":"{self._crc:08x}"}}\n'.encode()

    def _started(self) -> int:
        if self._crc is None:
            raise ValueError("the header comes first")
        return self._crc

    def _check(self, key: object, kind: object, value: object, deadline_ms: object, written: int) -> None:
        """Raise unless the entry after ``written`` others is valid (rule 1) and declared."""
        if written >= self.count:
            raise ValueError(f"more entries than the {self.count} the header declared")
        # The common entry, a scalar string value, is checked here; the rest below.
        if (kind == "string" and type(value) in _SCALARS and (type(key) is str or type(key) is bytes)
                and (deadline_ms is None or type(deadline_ms) is int)):
            return
        problem = entry_problem(key, kind, value, deadline_ms, self._binary)
        if problem is not None:
            raise ValueError(problem)
