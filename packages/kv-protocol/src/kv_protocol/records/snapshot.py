"""The snapshot file (``kv.db``): every key with its type, value and deadline.

Plaintext encoding (the default), JSON Lines, each line ending in a newline::

    {"format":"kv-snapshot","version":1,"encoding":"plaintext","entries":N,"aof_position":P,"created_ms":T}
    [key, kind, value, deadline_ms]          N lines, each tagged JSON (kv_protocol.tagged)
    {"end":"kv-snapshot","entries":N,"crc32c":"<8 lowercase hex digits>"}

Binary encoding: the bytes ``d9 d9 f7`` (CBOR tag 55799, "self-described CBOR"),
then a CBOR sequence: the header map (the same fields, encoding "binary"), N arrays
``[key, kind, value, deadline_ms]``, and the trailer map, whose ``crc32c`` is an
unsigned integer.

Rules of this module:

1. An entry is (key, kind, value, deadline_ms). key is text or bytes; kind is
   "string" (value: any kv value), "list" (an array of values) or "hash" (a map
   from text or bytes fields to values); deadline_ms is the Unix time in ms at
   which the key expires, or null.
2. ``aof_position`` is the logical append-only-file position the snapshot holds
   everything before (see :mod:`kv_protocol.aof`); ``created_ms`` is when it was
   taken. The header's ``entries`` and the trailer's must equal the entries present.
3. The trailer's CRC32C covers every byte before the trailer: magic, header and
   entries, newlines included. The trailer is last: nothing may follow it.
4. The encoding is told by the first bytes: ``{`` is plaintext, ``d9 d9 f7`` binary.
5. Binary items are decoded with the frame decoder's safety (:mod:`kv_protocol.framing`):
   no tags but bignums, at most ``DEFAULT_MAX_DEPTH`` nested containers, no
   duplicate map keys, and every value must be a kv value.
6. Entries are returned as they are read, before the checksum can be verified: a
   loader fills a fresh keyspace and throws it away if :meth:`SnapshotReader.finish`
   raises. Memory holds one chunk plus the largest entry, never the whole file, and
   time stays linear in the file's size however it is cut into chunks (a binary
   entry far larger than a chunk is followed header by header until it is
   complete, not decoded again per chunk).
"""

from __future__ import annotations

import io
from typing import Any, Final, NoReturn

import cbor2

from kv_protocol.framing import _SEMANTIC_DECODERS, DEFAULT_MAX_DEPTH, _reject_tag
from kv_protocol.values import describe, type_name

from . import _files
from . import _snapshot_format as _format
from ._snapshot_format import ENCODINGS as ENCODINGS
from ._snapshot_format import KINDS as KINDS
from ._snapshot_format import Kind as Kind
from ._snapshot_format import SnapshotEntry as SnapshotEntry
from ._snapshot_format import SnapshotFormatError as SnapshotFormatError
from ._snapshot_format import SnapshotHeader as SnapshotHeader
from ._snapshot_format import SnapshotWriter as SnapshotWriter
from ._snapshot_format import detect_encoding as detect_encoding
from .tagged import loads

# Consumed bytes are dropped from the binary buffer past this size (as in framing).
_COMPACT_BYTES: Final = 64 * 1024
_SCALARS: Final = frozenset({str, bytes, int, float, bool, type(None)})
_KEYS: Final = frozenset({str, bytes})
# A NamedTuple from a checked list of four, without _make's length check.
_new_entry: Final = tuple.__new__


class SnapshotReader:
    """Sans-IO reader: feed it the file's bytes in any chunks, then call :meth:`finish`.

    Attributes:
        encoding: "plaintext" or "binary" once the first bytes are read, else None.
        header: the parsed header once read, else None.
        entries_read: entries read so far.
    """

    __slots__ = ("_base", "_broken", "_crc", "_crc_pos", "_decoder", "_end", "_fp", "_line", "_lines", "_pos",
                 "_prefix", "_scan", "_scan_at", "_trailer", "encoding", "entries_read", "header")

    def __init__(self) -> None:
        self.encoding: str | None = None
        self.header: SnapshotHeader | None = None
        self.entries_read = 0
        self._broken: SnapshotFormatError | None = None
        self._prefix: bytes | None = None  # bytes fed before the encoding is known
        self._trailer = False
        self._crc = 0
        # plaintext: complete lines come out of _lines; _line counts them
        self._lines = _files.LineSplitter()
        self._line = 0
        # binary: unconsumed bytes are _fp[_pos:_end]; _fp's first byte is at file
        # offset _base; the CRC covers the file up to _fp[_crc_pos].
        self._fp = io.BytesIO()
        self._decoder = self._new_decoder()
        self._base = self._pos = self._end = self._crc_pos = 0
        # While a large item arrives: item_end's stack, and where it resumes (from _pos).
        self._scan: list[int] | None = None
        self._scan_at = 0

    def feed(self, data: bytes) -> list[SnapshotEntry]:
        """Add the next bytes of the file; return the entries they complete (unverified, rule 6).

        Raises:
            SnapshotFormatError: the bytes are not part of a well-formed snapshot.
                Every later call raises it again.
        """
        if self._broken is not None:
            raise self._broken
        if self.encoding is None:
            data = (self._prefix or b"") + data
            self.encoding = detect_encoding(data)
            if self.encoding is None:
                if _format.MAGIC.startswith(data):  # empty, or too short to tell
                    self._prefix = data
                    return []
                self._fail(f"not a kv snapshot: it starts with {describe(data[:8])}", 0)
            if self.encoding == "binary":
                self._crc = _files.crc32c(_format.MAGIC)
                self._base = len(_format.MAGIC)  # _fp starts after the magic
                data = data[len(_format.MAGIC) :]
        if self.encoding == "plaintext":
            return self._feed_lines(data)
        return self._feed_items(data)

    def finish(self) -> SnapshotHeader:
        """Call at the end of the file: check that it is complete and intact (rules 2 and 3).

        Raises:
            SnapshotFormatError: the file is empty, truncated, or failed a check.
        """
        if self._broken is not None:
            raise self._broken
        if self.encoding is None:
            self._fail("not a kv snapshot: " + ("the file is empty" if not self._prefix else "too short"), 0)
        partial = self._lines.pending > 0 or self._end > self._pos
        if self.header is None:
            self._fail("truncated: the file ends inside the header", 0)
        if not self._trailer:
            inside = f"inside entry {self.entries_read + 1}, " if partial else ""
            self._fail(f"truncated: the file ends {inside}before the trailer ({self.entries_read} of "
                       f"{self.header.entries} entries read)", *self._here(partial=True))
        return self.header

    # -- plaintext ---------------------------------------------------------------

    def _feed_lines(self, data: bytes) -> list[SnapshotEntry]:
        offset, block, lines = self._lines.feed(data)
        block_start = crc_from = offset
        entries: list[SnapshotEntry] = []
        limit = self.header.entries if self.header is not None else 0
        for line in lines:
            self._line += 1
            if self._trailer:
                self._fail("data after the trailer", offset, self._line)
            first = line[:1]
            if self.header is None:
                limit = self._check_header(self._plain_json(line, offset, "header"), offset).entries
            elif first == b"[":
                self.entries_read += 1
                try:
                    item = loads(line)
                except ValueError as exc:
                    self._fail(f"entry is not valid tagged JSON: {exc}", *self._here(offset, entry=True))
                if (self.entries_read <= limit and type(item) is list and len(item) == 4  # as in binary
                        and item[1] == "string" and type(item[0]) in _KEYS
                        and (item[3] is None or type(item[3]) is int)):
                    entries.append(_new_entry(SnapshotEntry, item))
                else:
                    entries.append(self._entry(item, offset, False))
            elif first == b"{":
                with memoryview(block) as view:
                    self._crc = _files.crc32c(view[crc_from - block_start : offset - block_start], self._crc)
                crc_from = offset
                self._check_trailer(self._plain_json(line, offset, "trailer"), offset)
            else:
                self._fail("expected an entry (an array) or the trailer (an object)", offset, self._line)
            offset += len(line) + 1
        if not self._trailer and offset > crc_from:
            with memoryview(block) as view:
                self._crc = _files.crc32c(view[crc_from - block_start : offset - block_start], self._crc)
        if self._lines.pending:
            if self._trailer:
                self._fail("data after the trailer", offset, self._line + 1)
            if self.header is None and self._lines.pending > _format.MAX_HEADER_BYTES:
                self._fail(f"not a kv snapshot: no newline in {_format.MAX_HEADER_BYTES} bytes", 0, 1)
        return entries

    def _plain_json(self, line: bytes, offset: int, what: str) -> object:
        if len(line) > _format.MAX_HEADER_BYTES:
            self._fail(f"the {what} is longer than {_format.MAX_HEADER_BYTES} bytes", offset, self._line)
        try:
            return loads(line)
        except ValueError as exc:
            self._fail(f"the {what} is not valid JSON: {exc}", offset, self._line)

    # -- binary ------------------------------------------------------------------

    def _new_decoder(self) -> cbor2.CBORDecoder:
        # framing's tag policy: bignums only (rule 5). The decoder reads ahead
        # read_size bytes and seeks back after each item: 64 covers a small entry,
        # where the default 4 KiB copies that much per entry (7% slower to load).
        return cbor2.CBORDecoder(self._fp, max_depth=DEFAULT_MAX_DEPTH, semantic_decoders=_SEMANTIC_DECODERS,
                                 tag_hook=_reject_tag, allow_duplicate_keys=False, read_size=64)

    def _feed_items(self, data: bytes) -> list[SnapshotEntry]:
        fp = self._fp
        if data:
            if self._trailer:
                self._fail("data after the trailer", self._base + self._end)
            fp.seek(self._end)
            fp.write(data)
            self._end += len(data)
        pos, end, base = self._pos, self._end, self._base
        if self._scan is not None:  # a large item is arriving: follow its headers
            with fp.getbuffer() as view:
                at, done = _format.item_end(view, pos + self._scan_at, end, self._scan)
            if not done:
                self._scan_at = at - pos
                return []
            self._scan = None
        entries: list[SnapshotEntry] = []
        append, decode, tell = entries.append, self._decoder.decode, fp.tell
        limit = self.header.entries if self.header is not None else 0
        fp.seek(pos)
        while pos < end:
            try:
                item = decode()
            except cbor2.CBORDecodeEOF:
                if self.header is None and end - pos > _format.MAX_HEADER_BYTES:
                    self._fail(f"not a kv snapshot: no header in {end - pos} bytes", base + pos)
                self._decoder = self._new_decoder()  # in case it kept read-ahead state
                if end - pos >= _format.SCAN_BYTES:
                    self._scan = []
                    with fp.getbuffer() as view:
                        at, done = _format.item_end(view, pos, end, self._scan)
                    if done:  # complete, yet the decoder wants more: not CBOR we can read
                        self._fail("malformed CBOR: an item the decoder cannot finish", base + pos)
                    self._scan_at = at - pos
                break
            except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError) as exc:
                self._fail(f"malformed CBOR: {exc}", *self._here(base + pos, partial=self.header is not None))
            stop = tell()
            kind = type(item)
            if self.header is None:
                limit = self._check_header(item, base + pos).entries
            elif kind is list:
                self.entries_read += 1
                # The common entry, a small string, is checked inline: at a million
                # entries, two method calls each are a tenth of the loading time.
                if (self.entries_read <= limit and len(item) == 4 and item[1] == "string"
                        and type(item[2]) in _SCALARS and type(item[0]) in _KEYS
                        and (item[3] is None or type(item[3]) is int)):
                    append(_new_entry(SnapshotEntry, item))
                else:
                    append(self._entry(item, base + pos, True))
            elif kind is dict:
                self._update_crc(pos)
                self._check_trailer(item, base + pos)
                if stop < end:
                    self._fail("data after the trailer", base + stop)
            else:
                self._fail(f"expected an entry (an array) or the trailer (a map), not {type_name(item)}",
                           base + pos)
            pos = stop
        if not self._trailer:
            self._update_crc(pos)
        self._pos = pos
        if pos > _COMPACT_BYTES or pos == end:
            with fp.getbuffer() as view:
                rest = view[pos:end].tobytes()
            self._fp = self._decoder.fp = io.BytesIO(rest)
            self._base += pos
            self._crc_pos -= pos
            self._pos, self._end = 0, len(rest)
        return entries

    def _update_crc(self, pos: int) -> None:
        with self._fp.getbuffer() as view:
            self._crc = _files.crc32c(view[self._crc_pos : pos], self._crc)
        self._crc_pos = pos

    # -- both --------------------------------------------------------------------

    def _check_header(self, fields: object, offset: int) -> SnapshotHeader:
        assert self.encoding is not None
        try:
            self.header = _format.parse_header(fields, self.encoding)
        except ValueError as exc:
            self._fail(str(exc), *self._here(offset))
        return self.header

    def _check_trailer(self, fields: object, offset: int) -> None:
        assert self.header is not None and self.encoding is not None
        here = self._here(offset)
        try:
            count, stored = _format.parse_trailer(fields, self.encoding)
        except ValueError as exc:
            self._fail(str(exc), *here)
        if count != self.header.entries:
            self._fail(f"the trailer counts {count} entries, the header {self.header.entries}", *here)
        if self.entries_read != count:
            self._fail(f"the header declares {count} entries; the trailer follows {self.entries_read}", *here)
        if stored != self._crc:
            self._fail(f"checksum mismatch (stored {stored:08x}, computed {self._crc:08x})", *here)
        self._trailer = True

    def _entry(self, item: Any, offset: int, check_values: bool) -> SnapshotEntry:
        """The entry ``item``, counted already in entries_read, once fully checked."""
        assert self.header is not None
        if self.entries_read > self.header.entries:
            self._fail(f"more entries than the {self.header.entries} the header declares",
                       *self._here(offset, entry=True))
        if type(item) is not list or len(item) != 4:
            self._fail(f"an entry is an array [key, kind, value, deadline_ms], not {describe(item)}",
                       *self._here(offset, entry=True))
        problem = _format.entry_problem(item[0], item[1], item[2], item[3], check_values)
        if problem is not None:
            self._fail(problem, *self._here(offset, entry=True))
        return _new_entry(SnapshotEntry, item)

    def _here(self, offset: int = -1, *, partial: bool = False, entry: bool = False
              ) -> tuple[int, int | None, int | None]:
        """(offset, line, entry) of an error at ``offset``, by default where reading stopped."""
        if offset < 0:
            offset = self._lines.offset if self.encoding == "plaintext" else self._base + self._pos
        number = self.entries_read + partial if entry or partial else None
        if self.encoding == "plaintext":
            return offset, self._line + partial, number
        return offset, None, number

    def _fail(self, reason: str, offset: int, line: int | None = None, entry: int | None = None) -> NoReturn:
        self._broken = SnapshotFormatError(reason, offset, line, entry)
        raise self._broken
