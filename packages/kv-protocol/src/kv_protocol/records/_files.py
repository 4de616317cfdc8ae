"""What the file codecs (:mod:`~kv_protocol.aof`, :mod:`~kv_protocol.snapshot`) share.

Rules of this module:

1. Checksums are CRC32C (Castagnoli), as in iSCSI, ext4 and LevelDB: the ``crc32c``
   package computes it with the CPU's CRC instruction at several GB/s, where the
   standard library only has zlib's CRC32. Written as text it is 8 lowercase hex
   digits.
2. ``crc32c`` is imported at the first checksum, not with kv_protocol: its package
   reads its own version through ``importlib.metadata``, which costs tens of
   milliseconds and loads ``socket`` (see tests/test_no_io.py), and most users of
   kv_protocol (clients) never touch a file format.
3. Errors in files name where they are: ``line 7, byte offset 412: <reason>`` for
   line-based formats, ``entry 5, byte offset 77: <reason>`` for the binary snapshot,
   with 1-based lines and entries and 0-based byte offsets (what ``dd skip=`` and a
   hex editor take).
"""

from __future__ import annotations

from typing import Protocol


class Checksum(Protocol):
    def __call__(self, data: bytes | bytearray | memoryview, value: int = 0, /) -> int: ...


def _first_crc32c(data: bytes | bytearray | memoryview, value: int = 0, /) -> int:
    global crc32c  # rebound once, at the first call (rule 2)
    from crc32c import crc32c as native

    crc32c = native
    return native(data, value)


crc32c: Checksum = _first_crc32c
"""CRC32C of ``data``, continuing from ``value`` (the CRC of the bytes before it).

Call it as ``_files.crc32c(...)``: a name imported with ``from`` would keep the
first-call stub.
"""


def where(offset: int, line: int | None = None, entry: int | None = None) -> str:
    """The location prefix of an error message (rule 3)."""
    if line is not None:
        return f"line {line}, byte offset {offset}"
    if entry is not None:
        return f"entry {entry}, byte offset {offset}"
    return f"byte offset {offset}"


class LineSplitter:
    """Cuts fed bytes into complete lines and keeps the partial last one.

    Each call copies the new data at most once (joined to the partial line, and only
    when a newline arrives), so a long line fed in small pieces costs linear time,
    and memory holds one chunk plus the longest line, never the file.
    """

    __slots__ = ("_partial", "offset")

    def __init__(self) -> None:
        self._partial = bytearray()
        self.offset = 0  # file offset of the first byte not yet returned in a line

    @property
    def pending(self) -> int:
        """Bytes of the partial last line (after the last newline)."""
        return len(self._partial)

    def partial(self) -> bytes:
        return bytes(self._partial)

    def feed(self, data: bytes) -> tuple[int, bytes, list[bytes]]:
        """Add bytes; return (offset of the first line, the block, the complete lines).

        The lines are returned without their newlines; ``block`` holds them with
        their newlines (and maybe more), starting at the returned offset, so a
        caller can checksum a run of lines in one call.
        """
        start = self.offset
        if data.find(b"\n") < 0:
            self._partial += data
            return start, b"", []
        if self._partial:
            data = bytes(self._partial) + data
        lines = data.split(b"\n")
        tail = lines.pop()
        self._partial = bytearray(tail)
        self.offset = start + len(data) - len(tail)
        return start, data, lines
