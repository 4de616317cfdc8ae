"""atheris harness: the AOF and snapshot readers, and start-up, on arbitrary file bytes.

Modes (bits 0x18 of the first byte; fuzz/harness.py rule 2 cuts the rest):

- AOF: ``AofReader`` fed the chunks, then ``finish``; and fed all bytes at once;
- SNAPSHOT: the same for ``SnapshotReader``;
- STARTUP: the first chunk is written as ``kv.db`` and the rest as ``kv.aof`` in a
  scratch directory, and kv-server's start-up (``kv_server._recovery.recover``)
  loads them into a fresh keyspace. Bit 0x20 recomputes every AOF line's CRC
  first, so that mutated commands get past the checksum into replay; bit 0x40
  allows a torn last record (``--aof-load-truncated``).

What the readers and start-up promise, checked per input:

- only ``AofFormatError`` / ``SnapshotFormatError`` escape the readers, and only
  ``StartupError`` (the one-line message naming the file) escapes start-up;
- a reader gives the same records (entries, for a snapshot that loads), and fails
  at the same line, byte offset and entry, however the file is cut into chunks
  (the server reads 1 MiB at a time; the tools too);
- a reader that failed raises the same error again (aof.py rule 5);
- after a successful start-up the keyspace is sound.

Run: ``python fuzz/fuzz_files.py -max_total_time=60 fuzz/corpus/files``.
"""

from __future__ import annotations

import atexit
import enum
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Final

import cbor2
from harness import fuzz_main, raises_again, split

from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS
from kv_protocol.records import _files
from kv_protocol.records.aof import AofFormatError, AofReader, AofRecord
from kv_protocol.records.snapshot import SnapshotEntry, SnapshotFormatError, SnapshotReader
from kv_server._config import ServerConfig
from kv_server._datadir import AOF, SNAPSHOT
from kv_server._keyspace import Keyspace, KvHash, KvList
from kv_server._recovery import StartupError, recover
from kv_server._state import ServerState

FLAG_FIX_CRC: Final = 0x20
FLAG_ALLOW_TORN: Final = 0x40
NOW_MS: Final = 1_700_000_000_000


class Mode(enum.IntEnum):
    AOF = 0
    SNAPSHOT = 1
    STARTUP = 2
    STARTUP_AOF_ONLY = 3  # no kv.db: replay alone decides


# One state and one scratch directory per process: a ServerState costs milliseconds.
STATE: Final = ServerState(ServerConfig(password="fuzz", auth_iterations=MIN_PBKDF2_ITERATIONS, port=0))
SCRATCH: Final = Path(tempfile.mkdtemp(prefix="kv-fuzz-files-", dir="/dev/shm" if Path("/dev/shm").is_dir()
                                       else None))
atexit.register(shutil.rmtree, SCRATCH, ignore_errors=True)
# Start-up logs a warning for each torn record it drops: with no handler configured,
# logging's last resort would print one line per input. Records still propagate.
logging.getLogger("kv_server").addHandler(logging.NullHandler())


def _error_place(exc: AofFormatError | SnapshotFormatError) -> tuple[object, ...]:
    if isinstance(exc, AofFormatError):
        return exc.line, exc.offset, exc.torn
    return exc.offset, exc.line, exc.entry


def _record(record: AofRecord) -> bytes:
    return cbor2.dumps([record.line, record.offset, record.end, record.position, record.timestamp_ms,
                        record.argv])


def _entry(entry: SnapshotEntry) -> bytes:
    return cbor2.dumps(list(entry))


def read_aof(chunks: list[bytes]) -> tuple[list[bytes], tuple[object, ...] | None]:
    """Records (as bytes) and the error's place, or None; checks the reader stays broken."""
    reader = AofReader()
    found: list[bytes] = []
    try:
        for chunk in chunks:
            found += [_record(record) for record in reader.feed(chunk)]
        end = reader.finish()
    except AofFormatError as exc:
        error = exc
    else:
        assert end.records == len(found) and end.good_end + end.tail_bytes == sum(map(len, chunks))
        return found, None
    assert raises_again(reader.finish, error), "a broken reader did not raise the same error again"
    return found, _error_place(error)


def read_snapshot(chunks: list[bytes]) -> tuple[list[bytes], tuple[object, ...] | None]:
    """Entries (as bytes) and the error's place, or None; checks the reader stays broken."""
    reader = SnapshotReader()
    found: list[bytes] = []
    try:
        for chunk in chunks:
            found += [_entry(entry) for entry in reader.feed(chunk)]
        header = reader.finish()
    except SnapshotFormatError as exc:
        error = exc
    else:
        assert header.entries == len(found) == reader.entries_read
        return found, None
    assert raises_again(reader.finish, error), "a broken reader did not raise the same error again"
    return found, _error_place(error)


def fix_checksums(aof: bytes) -> bytes:
    """Every complete line after the first with its CRC field recomputed (aof.py rule 2)."""
    lines = aof.split(b"\n")
    for index in range(1, len(lines) - 1):
        fields = lines[index].split(b" ", 2)
        if len(fields) == 3:
            stamp, _, command = fields
            crc = _files.crc32c(command, _files.crc32c(stamp + b" "))
            lines[index] = b"%s %08x %s" % (stamp, crc, command)
    return b"\n".join(lines)


def start_up(snapshot: bytes | None, aof: bytes, allow_torn: bool) -> None:
    """kv-server's start-up on these files: loads, or raises StartupError only."""
    for path in list(SCRATCH.iterdir()):
        path.unlink()
    if snapshot is not None:
        (SCRATCH / SNAPSHOT).write_bytes(snapshot)
    (SCRATCH / AOF).write_bytes(aof)
    STATE.keyspace = Keyspace(lambda: NOW_MS)
    try:
        recover(STATE, SCRATCH, allow_torn)
    except StartupError as exc:
        message = str(exc)
        assert "\n" not in message and str(SCRATCH) in message, message
        return
    keyspace = STATE.keyspace
    for key, value in keyspace.data.items():
        assert type(key) in (str, bytes), key
        if type(value) in (KvList, KvHash):
            assert value, f"start-up left an empty {type(value).__name__} at {key!r}"
    assert set(keyspace.expires) <= set(keyspace.data)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris's name)
    flags, chunks = split(data)
    mode = Mode((flags >> 3) & 3)
    if mode in (Mode.AOF, Mode.SNAPSHOT):
        read = read_aof if mode is Mode.AOF else read_snapshot
        chunked, chunked_error = read(chunks)
        whole, whole_error = read([b"".join(chunks)])
        assert chunked_error == whole_error, f"chunking moved the error: {chunked_error} != {whole_error}"
        # The AOF reader returns the records before a bad line (aof.py rule 5); the
        # snapshot reader may drop the entries of the call that fails, as a loader
        # discards them all anyway (snapshot.py rule 6).
        if mode is Mode.AOF or whole_error is None:
            assert chunked == whole, "chunking changed what was read"
        return
    snapshot = chunks[0] if mode is Mode.STARTUP and len(chunks) > 1 else None
    aof = b"".join(chunks[1:] if snapshot is not None else chunks)
    if flags & FLAG_FIX_CRC:
        aof = fix_checksums(aof)
    start_up(snapshot, aof, bool(flags & FLAG_ALLOW_TORN))


if __name__ == "__main__":
    fuzz_main(TestOneInput)
