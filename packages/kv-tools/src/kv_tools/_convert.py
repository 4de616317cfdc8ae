"""kv-convert: convert, rebuild and inspect kv snapshots (``kv.db``) offline.

Rules of this module:

1. Nothing is read whole. Every mode feeds the file to
   :class:`~kv_protocol.records.snapshot.SnapshotReader` in ``CHUNK_BYTES`` chunks and
   handles the entries each chunk completes, so memory holds one chunk plus the largest
   entry whatever the file's size. A conversion learns the entry count for the new
   header from the old header, which the reader parses first.
2. OUT only ever appears complete and verified. A conversion writes ``OUT.tmp``,
   fsyncs it, reads it back in full (count and checksum, through
   ``SnapshotReader.finish()``), and only then renames it over OUT and fsyncs the
   directory: the server's own save sequence. Any failure removes ``OUT.tmp`` and
   leaves OUT as it was. IN's entries reach ``OUT.tmp`` before IN's checksum is
   verified (they arrive first); a damaged IN therefore never gets past the rename.
3. OUT is never IN, and an existing OUT is replaced only with ``--force``.
4. Exit status: 0 done, 1 damaged input (the message names the file, the line or
   entry, the byte offset and the reason), 2 usage or I/O error. Messages go to stderr.
5. ``--from-aof`` runs the real kv-server on a copy of the data directory
   (:mod:`kv_tools._replay` says why), then converts the snapshot it saved.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Final

from kv_protocol.records.snapshot import (
    ENCODINGS,
    SnapshotEntry,
    SnapshotFormatError,
    SnapshotHeader,
    SnapshotReader,
    SnapshotWriter,
)
from kv_protocol.records.tagged import dumps

from ._files import fsync_directory
from ._progress import byte_progress
from ._version import __version__

# Big enough that the per-call cost of feed() vanishes, small enough not to matter in memory.
CHUNK_BYTES: Final = 1024 * 1024
EXIT_OK: Final = 0
EXIT_CORRUPT: Final = 1
EXIT_USAGE: Final = 2
FILE_MODE: Final = 0o600  # a snapshot holds every value in the database, as the server's does


class ConvertError(Exception):
    """A failure to report on stderr, with the exit status it means (rule 4)."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _corrupt(path: Path, exc: SnapshotFormatError) -> ConvertError:
    return ConvertError(f"{path}: {exc}", EXIT_CORRUPT)


def read_entries(path: Path, reader: SnapshotReader, *, progress: bool = False
                 ) -> Iterator[list[SnapshotEntry]]:
    """The entries of ``path`` chunk by chunk; ``reader.finish()`` is checked at the end.

    Raises:
        ConvertError: the file is damaged (status 1) or cannot be read (status 2).
    """
    try:
        with open(path, "rb") as source:
            size = os.fstat(source.fileno()).st_size
            with byte_progress(size if progress else 0, path.name) as advance:
                while chunk := source.read(CHUNK_BYTES):
                    batch = reader.feed(chunk)
                    advance(len(chunk))
                    if batch or reader.header is not None:
                        yield batch
            reader.finish()
    except SnapshotFormatError as exc:
        raise _corrupt(path, exc) from None
    except OSError as exc:
        raise ConvertError(f"{path}: cannot read: {exc.strerror or exc}") from None


def check_paths(source: Path, target: Path, *, force: bool) -> None:
    """Rule 3, and that IN is a readable file.

    Raises:
        ConvertError: status 2.
    """
    if not source.is_file():
        raise ConvertError(f"{source}: " + ("not a file" if source.exists() else "no such file"))
    if source.resolve() == target.resolve() or (target.exists() and os.path.samefile(source, target)):
        raise ConvertError(f"{target}: OUT is IN; write the converted snapshot elsewhere")
    if os.path.lexists(target) and not force:  # a dangling symlink is something too
        raise ConvertError(f"{target}: already exists; pass --force to replace it")
    if target.is_dir():
        raise ConvertError(f"{target}: is a directory")


def convert(source: Path, target: Path, encoding: str | None = None, *, force: bool = False,
            progress: bool = False) -> SnapshotHeader:
    """Write the snapshot ``source`` to ``target`` in ``encoding`` (default: the other one).

    The header's ``aof_position`` and ``created_ms`` are kept.

    Returns:
        The header of the verified ``target``.

    Raises:
        ConvertError: status 1 if ``source`` is damaged, 2 for usage and I/O errors.

    Durability: ``target`` appears by a rename after an fsync of the file, followed by
    an fsync of its directory (rule 2).
    """
    check_paths(source, target, force=force)
    # A name of our own, created exclusively (mode 0600, never following a link): a
    # leftover ``OUT.tmp`` may be the very file being recovered, so it is not touched,
    # and what the cleanup below deletes is only ever this run's file.
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise ConvertError(f"{target.parent}: cannot create a temporary file: "
                           f"{exc.strerror or exc}") from None
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            _write_converted(source, out, encoding, progress)
            out.flush()
            os.fsync(out.fileno())
        header = verify(temporary)
        os.replace(temporary, target)
        fsync_directory(target.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConvertError(f"{exc.filename or temporary}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return header


def _write_converted(source: Path, out: BinaryIO, encoding: str | None, progress: bool) -> None:
    reader = SnapshotReader()
    writer: SnapshotWriter | None = None
    for batch in read_entries(source, reader, progress=progress):
        if writer is None:
            header = reader.header
            assert header is not None  # read_entries yields once the header is read
            if encoding is None:
                encoding = "plaintext" if header.encoding == "binary" else "binary"
            writer = SnapshotWriter(encoding, header.entries, header.aof_position, header.created_ms)
            out.write(writer.header())
        if batch:
            out.write(writer.entries(batch))
    assert writer is not None  # finish() refuses a file without a header
    out.write(writer.trailer())


def verify(path: Path) -> SnapshotHeader:
    """Read ``path`` back in full: header, every entry, count and checksum.

    Raises:
        ConvertError: status 2, since what failed is the file just written.
    """
    reader = SnapshotReader()
    try:
        for _ in read_entries(path, reader):
            pass
    except ConvertError as exc:
        raise ConvertError(f"the written file does not read back: {exc}", EXIT_USAGE) from None
    assert reader.header is not None
    return reader.header


def dump(source: Path, out: BinaryIO) -> int:
    """Write each entry of ``source`` as one tagged-JSON line ``[key, kind, value, deadline]``.

    Entries are written as they are read; a damaged file is reported after the
    entries before the damage.

    Returns:
        The number of entries.
    """
    if not source.is_file():
        raise ConvertError(f"{source}: " + ("not a file" if source.exists() else "no such file"))
    reader = SnapshotReader()
    for batch in read_entries(source, reader):
        if batch:
            out.write("".join([dumps(list(entry)) + "\n" for entry in batch]).encode())
    return reader.entries_read


def stats(source: Path) -> list[tuple[str, str]]:
    """The header, counts and sizes of ``source`` as (label, value) rows.

    Sizes of values are approximate: the length of their tagged JSON.
    """
    if not source.is_file():
        raise ConvertError(f"{source}: " + ("not a file" if source.exists() else "no such file"))
    reader = SnapshotReader()
    keys: Counter[str] = Counter()
    value_bytes: Counter[str] = Counter()
    items: Counter[str] = Counter()
    key_bytes = deadlines = largest = 0
    largest_key: object = None
    for batch in read_entries(source, reader, progress=True):
        for key, kind, value, deadline_ms in batch:
            keys[kind] += 1
            size = len(dumps(value))
            value_bytes[kind] += size
            if kind != "string":
                items[kind] += len(value)  # type: ignore[arg-type]  # a list or a map
            key_bytes += len(key) if isinstance(key, bytes) else len(key.encode())
            deadlines += deadline_ms is not None
            if size > largest:
                largest, largest_key = size, key
    header = reader.header
    assert header is not None
    created = datetime.fromtimestamp(header.created_ms / 1000, UTC).isoformat(timespec="milliseconds")
    rows = [
        ("file", str(source)),
        ("file size", f"{source.stat().st_size} bytes"),
        ("encoding", header.encoding),
        ("version", str(header.version)),
        ("entries", str(header.entries)),
        ("aof_position", str(header.aof_position)),
        ("created_ms", f"{header.created_ms} ({created.replace('+00:00', 'Z')})"),
        ("checksum", "ok"),
    ]
    for kind in ("string", "list", "hash"):
        elements = f", {items[kind]} {'elements' if kind == 'list' else 'fields'}" if kind != "string" else ""
        rows.append((f"{kind} keys", f"{keys[kind]}{elements}, values ~{value_bytes[kind]} bytes"))
    rows += [
        ("keys with deadline", str(deadlines)),
        ("key bytes", str(key_bytes)),
        ("value bytes", f"~{sum(value_bytes.values())} (tagged JSON)"),
    ]
    if largest_key is not None:
        rows.append(("largest value", f"~{largest} bytes, key {dumps(largest_key)}"))
    return rows


def format_rows(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "".join(f"{label.ljust(width)}  {value}\n" for label, value in rows)


USAGE: Final = """\
kv-convert [--to {binary,plaintext}] [--force] IN OUT
       kv-convert --from-aof DIR [--to {binary,plaintext}] [--force] [--aof-load-truncated] OUT
       kv-convert --dump IN
       kv-convert --stats IN"""

DESCRIPTION: Final = """\
Convert a kv snapshot between its plaintext (JSON Lines) and binary (CBOR) encodings,
rebuild a snapshot from a data directory's snapshot and append-only files offline, or
print a snapshot's entries or a summary. Files are streamed: memory does not grow with
their size. A converted snapshot is verified (entry count and checksum) before it
replaces OUT."""

EPILOG: Final = """\
--from-aof runs kv-server (it must be installed: pip install kv-server) on a temporary
copy of DIR, so the dataset is rebuilt by the same code as at server start-up: load
kv.db, replay kv.aof.1, kv.aof.2, ..., kv.aof past the snapshot's position. DIR itself
is not changed; a server running on DIR makes kv-convert refuse.

exit status:
  0  done
  1  damaged input: the message names the file, line or entry, byte offset and reason
  2  usage error, or a file that cannot be read or written

A progress bar is shown on stderr when it is a terminal and the file is large. See docs/persistence.md for
the file formats."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kv-convert", usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="IN OUT", help="the snapshot to read, and where to write")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--from-aof", type=Path, metavar="DIR",
                      help="build OUT from the data directory DIR (kv.db and kv.aof*) as start-up would")
    mode.add_argument("--dump", action="store_true",
                      help="print IN's entries: one tagged-JSON [key, type, value, deadline] per line")
    mode.add_argument("--stats", action="store_true",
                      help="print IN's header, keys per type, key and value sizes, and keys with deadlines")
    parser.add_argument("--to", choices=ENCODINGS,
                        help="OUT's encoding (default: the other one of IN's; for --from-aof, DIR's own)")
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--aof-load-truncated", action="store_true",
                        help="with --from-aof: drop a torn last AOF record, as kv-server's flag does")
    parser.add_argument("--version", action="version", version=f"kv-convert {__version__}")
    return parser


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    paths = [Path(p) for p in args.paths]
    wanted = 1 if args.dump or args.stats or args.from_aof is not None else 2
    if len(paths) != wanted:
        parser.error(f"expected {'OUT' if args.from_aof is not None else 'IN' if wanted == 1 else 'IN OUT'}")
    if (args.dump or args.stats) and (args.to or args.force or args.aof_load_truncated):
        parser.error("--to, --force and --aof-load-truncated go with a conversion, not --dump/--stats")
    if args.aof_load_truncated and args.from_aof is None:
        parser.error("--aof-load-truncated goes with --from-aof")
    if args.dump:
        try:
            dump(paths[0], sys.stdout.buffer)
            sys.stdout.flush()
        except BrokenPipeError:  # `kv-convert --dump IN | head`: the reader has had enough
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return EXIT_OK
    if args.stats:
        sys.stdout.write(format_rows(stats(paths[0])))
        return EXIT_OK
    if args.from_aof is not None:
        from ._replay import from_aof

        header = from_aof(args.from_aof, paths[0], args.to, force=args.force,
                          allow_torn=args.aof_load_truncated, progress=True)
        source = args.from_aof
    else:
        header = convert(paths[0], paths[1], args.to, force=args.force, progress=True)
        source = paths[0]
    print(f"kv-convert: {source} -> {paths[-1]}: {header.entries} entries, {header.encoding}, "
          f"aof_position {header.aof_position}, verified", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, parser)
    except ConvertError as exc:
        print(f"kv-convert: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
