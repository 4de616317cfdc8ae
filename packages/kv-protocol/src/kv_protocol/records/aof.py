"""The append-only file: a header line, then one checksummed line per write command.

Format version 1, in full::

    kv-aof 1 <start>\\n
    <timestamp_ms> <crc> <command>\\n
    ...

Rules of this module:

1. The header names the format, its version and ``start``, a decimal integer: the
   logical position of the first byte after the header. A record's logical position
   is ``start + (its byte offset - the header's length)``, so positions keep counting
   across AOF restarts, and a snapshot can say "I hold everything before position P".
   The header has no checksum of its own: the reader checks its form only.
2. A record is one line of three fields separated by single spaces: timestamp_ms
   (decimal Unix milliseconds at which the command ran), crc (the CRC32C of the
   UTF-8 bytes ``<timestamp_ms> <command>``, that is the line without the crc field,
   its space and the newline, as exactly 8 lowercase hex digits) and command
   (``tagged.dumps(argv)``: argv is a non-empty array whose first item is the
   command name). Tagged JSON never holds a raw newline, so a newline ends a record.
   A transaction is one record whose command is ``["MULTI", argv, argv, ...]``
   (:data:`TRANSACTION`): its write commands, applied in order as one unit, so a
   torn transaction is dropped whole.
3. Torn is not corrupt. Bytes after the last newline at the end of the file are a
   torn tail, what a crash in the middle of a write leaves (NUL bytes that a
   filesystem left in place of data count too); :meth:`AofReader.finish` reports
   it. A complete line that fails a check is corruption, the last line included,
   and raises :class:`AofFormatError`.
4. A line holds at most ``MAX_LINE_BYTES`` bytes: the reader fails as soon as a
   partial line passes the limit, so garbage without newlines cannot fill memory,
   and :func:`encode_record` refuses to write a line the reader would refuse.
5. Records before a bad line are returned before its error is raised (by the same
   call when it has none to return, else by the next one), and after an error the
   reader is broken: every later call raises the same error.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, NoReturn

from kv_protocol.framing import DEFAULT_MAX_FRAME_SIZE
from kv_protocol.values import Value, describe

from . import _files
from .tagged import dumps, loads

MAGIC: Final = b"kv-aof"
TRANSACTION: Final = "MULTI"
"""The command name of a transaction's record (rule 2)."""
VERSION: Final = 1
# A command fits in one frame (64 MiB of CBOR), and its tagged JSON is at most about
# twice as long for any realistic value (base64 adds a third, escaped quotes double
# a string). Pathological values (strings of control characters, each written as
# six, or maps of tiny bytes keys) can grow more and are refused by encode_record;
# the 1 MiB covers the timestamp, crc and tags.
MAX_LINE_BYTES: Final = 2 * DEFAULT_MAX_FRAME_SIZE + 1024 * 1024
# "kv-aof 1 " plus a start of at most 20 digits (2**64 has 20), with room to spare.
MAX_HEADER_BYTES: Final = 64
# Timestamps are Unix milliseconds: 20 digits pass the year 3 billion.
_MAX_STAMP_DIGITS: Final = 20
_STAMP_LIMIT: Final = 10**_MAX_STAMP_DIGITS
_CRC: Final = re.compile(rb"[0-9a-f]{8}")
_HEADER_PREFIX: Final = MAGIC + b" "


class AofFormatError(ValueError):
    """A malformed append-only file, and where: ``line 7, byte offset 412: <reason>``.

    ``torn`` is true when the file merely ends early (a crash mid-write, rule 3),
    false when a complete line is wrong (corruption).
    """

    def __init__(self, reason: str, line: int, offset: int, torn: bool = False) -> None:
        super().__init__(reason, line, offset, torn)
        self.reason = reason
        self.line = line
        self.offset = offset
        self.torn = torn

    def __str__(self) -> str:
        return f"{_files.where(self.offset, line=self.line)}: {self.reason}"


class EmptyAofError(AofFormatError):
    """The file is empty (0 bytes): it has no header, so no start position either.

    A crash right after the file was created leaves this; a server treats a
    missing or empty append-only file as an empty log.
    """


@dataclass(frozen=True, slots=True)
class AofRecord:
    """One verified record: where it is (line, bytes, logical positions) and what."""

    line: int  # 1-based; the header is line 1
    offset: int  # byte offset of the line's first byte in the file
    end: int  # byte offset just after its newline
    position: int  # logical position of its first byte (rule 1)
    end_position: int  # logical position just after its newline
    timestamp_ms: int
    argv: list[Value]


@dataclass(frozen=True, slots=True)
class AofEnd:
    """What :meth:`AofReader.finish` found at the end of the file."""

    start: int  # the header's start position
    records: int  # records read
    good_end: int  # byte offset after the last good record (or the header)
    end_position: int  # logical position at good_end: where the next record goes
    torn: bool  # bytes follow the last newline (rule 3); truncate at good_end to drop them
    tail_bytes: int  # how many


def _record_factory() -> Callable[[int, int, int, int, int, int, list[Value]], AofRecord]:
    # A frozen dataclass's __init__ sets each field through object.__setattr__; the
    # slots' own descriptors do the same at half the cost, which is a third of the
    # time to read a record. tests/test_aof.py checks the result equals __init__'s.
    new = object.__new__
    setters = tuple(getattr(AofRecord, field.name).__set__ for field in dataclasses.fields(AofRecord))
    s0, s1, s2, s3, s4, s5, s6 = setters

    def make(line: int, offset: int, end: int, position: int, end_position: int, timestamp_ms: int,
             argv: list[Value]) -> AofRecord:
        record = new(AofRecord)
        s0(record, line)
        s1(record, offset)
        s2(record, end)
        s3(record, position)
        s4(record, end_position)
        s5(record, timestamp_ms)
        s6(record, argv)
        return record

    return make


_new_record: Final = _record_factory()


def encode_header(start: int) -> bytes:
    """The header line of a file whose first record will be at logical ``start``.

    Raises:
        ValueError: ``start`` is not a non-negative int.
    """
    if type(start) is not int or start < 0:
        raise ValueError(f"start must be a non-negative int, not {describe(start)}")
    return b"kv-aof %d %d\n" % (VERSION, start)


def encode_record(timestamp_ms: int, argv: Sequence[object]) -> bytes:
    """One record line (rule 2), newline included: about 1 µs for a small command.

    Raises:
        ValueError: ``timestamp_ms`` is not a non-negative int of at most 20 digits,
            ``argv`` does not start with the command name (a str), a value nests
            too deep, text holds a lone surrogate (UnicodeEncodeError), or the
            line would exceed ``MAX_LINE_BYTES`` (rule 4). Nothing was written.
        TypeError: ``argv`` holds something that is not a kv value.
    """
    if type(timestamp_ms) is not int or not 0 <= timestamp_ms < _STAMP_LIMIT:
        raise ValueError(f"timestamp_ms must be a non-negative int, not {describe(timestamp_ms)}")
    if not argv or type(argv[0]) is not str:
        raise ValueError("argv must be a non-empty list whose first item is the command name")
    command = dumps(argv).encode("utf-8")
    stamp = b"%d " % timestamp_ms
    crc = _files.crc32c(command, _files.crc32c(stamp))
    record = b"%s%08x %s\n" % (stamp, crc, command)
    if len(record) > MAX_LINE_BYTES:
        raise ValueError(f"record of {len(record)} bytes exceeds the limit of {MAX_LINE_BYTES}")
    return record


class AofReader:
    """Sans-IO reader: feed it the file's bytes in any chunks, then call :meth:`finish`.

    Attributes:
        start: the header's start position, or None until the header is read.
        records: how many records were returned.
        good_end: byte offset just after the last good record (or the header).
    """

    __slots__ = ("_base", "_broken", "_fed", "_line", "_lines", "good_end", "max_line_bytes", "records",
                 "start")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.start: int | None = None
        self.records = 0
        self.good_end = 0
        self._base = 0  # start - the header's length: position = _base + offset
        self._line = 0  # number of the last complete line
        self._fed = 0
        self._lines = _files.LineSplitter()
        self._broken: AofFormatError | None = None

    @property
    def end_position(self) -> int | None:
        """Logical position just after the last good record; None before the header."""
        if self.start is None:
            return None
        return self._base + self.good_end

    def feed(self, data: bytes) -> list[AofRecord]:
        """Add the next bytes of the file; return every record they complete.

        Raises:
            AofFormatError: the header or a complete line is malformed, or a partial
                line is longer than ``max_line_bytes`` (rules 4 and 5).
        """
        if self._broken is not None:
            raise self._broken
        self._fed += len(data)
        offset, _, lines = self._lines.feed(data)
        records: list[AofRecord] = []
        append = records.append
        parse = self._record
        try:
            for line in lines:
                self._line += 1
                end = offset + len(line) + 1
                if self.start is None:
                    self._header(line)
                else:
                    append(parse(line, offset, end))
                offset = self.good_end = end
            self._check_partial()
        except AofFormatError:
            if records:
                self.records += len(records)
                return records  # the error waits for the next call (rule 5)
            raise
        self.records += len(records)
        return records

    def finish(self, *, allow_torn: bool = True) -> AofEnd:
        """Call at the end of the file: what is left after the last good record.

        Args:
            allow_torn: when false, a torn tail raises instead of being reported.

        Raises:
            EmptyAofError: the file is empty.
            AofFormatError: an error found earlier (rule 5); the header is torn or
                missing; or the tail is torn and ``allow_torn`` is false (``torn``
                is then true).
        """
        if self._broken is not None:
            raise self._broken
        tail = self._lines.pending
        if self.start is None:
            if self._fed == 0:
                raise EmptyAofError("empty file: no header", 1, 0, True)
            self._fail(f"torn header: the file ends after {tail} bytes, before the first newline",
                       partial=True, torn=True)
        if tail and not allow_torn:
            what = "all NUL" if not self._lines.partial().strip(b"\0") else "no newline"
            self._fail(f"torn last record: {tail} bytes after the last newline ({what}), "
                       "as a crash in the middle of a write leaves", partial=True, torn=True)
        return AofEnd(self.start, self.records, self.good_end, self._base + self.good_end, tail > 0, tail)

    def _header(self, line: bytes) -> None:
        fields = line.split(b" ")
        if len(line) > MAX_HEADER_BYTES or len(fields) != 3 or fields[0] != MAGIC:
            self._fail(f"not a kv append-only file: the first line must be 'kv-aof {VERSION} <start>', "
                       f"not {describe(line)}")
        version, start = fields[1], fields[2]
        if not version.isdigit():
            self._fail(f"garbled header: version {describe(version)} is not a number")
        if int(version) != VERSION:
            self._fail(f"unsupported format version {int(version)} (this reader knows {VERSION})")
        if not start.isdigit() or len(start) > _MAX_STAMP_DIGITS:
            self._fail(f"garbled header: start {describe(start)} is not a non-negative integer")
        self.start = int(start)
        self._base = self.start - (len(line) + 1)

    def _record(self, line: bytes, offset: int, end: int) -> AofRecord:
        if len(line) > self.max_line_bytes:
            self._fail(f"line of {len(line)} bytes exceeds the limit of {self.max_line_bytes}")
        fields = line.split(b" ", 2)
        if len(fields) != 3:
            hint = " (it starts with NUL bytes: zeros left by a crash?)" if line[:1] == b"\0" else ""
            self._fail(f"not a record: expected '<timestamp_ms> <crc> <command>'{hint}")
        stamp, stored, command = fields
        if not stamp.isdigit() or len(stamp) > _MAX_STAMP_DIGITS:
            self._fail(f"bad timestamp {describe(stamp)}: expected a non-negative integer")
        crc = b"%08x" % _files.crc32c(command, _files.crc32c(line[: len(stamp) + 1]))
        if stored != crc:  # one comparison checks the field's form too
            if _CRC.fullmatch(stored) is None:
                self._fail(f"bad checksum field {describe(stored)}: expected 8 lowercase hex digits")
            self._fail(f"checksum mismatch (stored {stored.decode()}, computed {crc.decode()})")
        try:
            argv = loads(command)
        except ValueError as exc:
            self._fail(f"command is not valid tagged JSON: {exc}")
        if type(argv) is not list or not argv or type(argv[0]) is not str:
            self._fail("command is not a non-empty array starting with the command name")
        base = self._base
        return _new_record(self._line, offset, end, base + offset, base + end, int(stamp), argv)

    def _check_partial(self) -> None:
        pending = self._lines.pending
        if self.start is None:
            partial = self._lines.partial()[: len(_HEADER_PREFIX)]
            if not _HEADER_PREFIX.startswith(partial):
                self._fail(f"not a kv append-only file: it starts with {describe(partial)}", partial=True)
            if pending > MAX_HEADER_BYTES:
                self._fail(f"garbled header: no newline in the first {MAX_HEADER_BYTES} bytes",
                           partial=True)
        elif pending > self.max_line_bytes:
            self._fail(f"no newline within {self.max_line_bytes} bytes: longer than any record",
                       partial=True)

    def _fail(self, reason: str, *, partial: bool = False, torn: bool = False) -> NoReturn:
        # The line being checked starts at good_end: a complete line is already
        # counted in _line, the partial line after the last newline is not.
        self._broken = AofFormatError(reason, self._line + partial, self.good_end, torn)
        raise self._broken
