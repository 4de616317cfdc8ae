"""``kv-aof-check FILE [--fix] [--yes]``: verify an append-only file, and cut it back.

The tool kv-server's start-up errors point to (``Run `kv-aof-check data/kv.aof` to see
the damage``), modelled on redis-check-aof. It reads the file with the server's own
codec (``kv_protocol.records.aof.AofReader``), so it accepts exactly what start-up
accepts, and reports the first line start-up would refuse.

Rules of this module:

1. Stream, never load: the file goes through the reader in ``CHUNK_BYTES`` pieces, so
   memory holds one chunk plus the longest line whatever the file's size (a
   multi-gigabyte AOF is exactly when this tool is needed).
2. The cut point is the reader's ``good_end``, the byte after the last record that
   verified: ``--fix`` never drops a verified record, and drops everything after it
   (records past a bad line cannot be trusted to follow on from it). The report
   counts the later lines that verify on their own, so nobody loses them unawares.
3. A torn tail (no newline at the end: the server stopped mid-write) counts as
   damage for the exit code, but the report says that record was never
   acknowledged, so dropping it loses nothing a client was told was saved.
4. ``--fix`` copies the whole file to ``FILE.bak`` (or ``FILE.bak.N``) and fsyncs the
   copy and its directory before it truncates anything; then it truncates and fsyncs.
   It holds the directory's ``kv.lock`` meanwhile, so a kv-server cannot be using
   the file, and it refuses if the file changed since it was checked.
5. Exit codes: 0 clean (or fixed), 1 damaged (and not fixed), 2 usage or I/O error.
   The report goes to stdout in a stable, parseable form; errors go to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from kv_protocol.records.aof import MAX_LINE_BYTES, AofFormatError, AofReader, EmptyAofError, encode_header

from ._files import ServerRunningError, fsync_directory, server_lock
from ._progress import byte_progress

# Large enough that per-call overhead vanishes next to checksumming and decoding,
# small enough that memory stays flat (rule 1); the server replays in 1 MiB too.
CHUNK_BYTES: Final = 1024 * 1024
EXIT_OK: Final = 0
EXIT_DAMAGED: Final = 1
EXIT_ERROR: Final = 2
_PROG: Final = "kv-aof-check"
# Past the first bad line each line is checked on its own, so the report can say how
# many records that still verify --fix would drop. Each bad line restarts a reader on
# the rest of its chunk; after this many (a garbage region) the rest is only counted.
SALVAGE_MAX_BAD_LINES: Final = 1000
_SCAN_HEADER: Final = encode_header(0)


class CheckError(Exception):
    """A usage or I/O problem (exit 2): the file could not be checked or fixed."""


@dataclass(slots=True)
class _Rest:
    """The lines from the first bad one to the end: what --fix would drop."""

    size: int = 0
    lines: int = 0
    good: int = 0  # complete lines that verify on their own as records
    bad: int = 0
    capped: bool = False  # SALVAGE_MAX_BAD_LINES reached: later lines were only counted


@dataclass(frozen=True, slots=True)
class Check:
    """What reading the whole file found."""

    path: Path
    size: int  # bytes read
    lines: int  # lines in the file; a partial last line counts
    start: int | None  # the header's start position; None when the header is bad
    records: int  # records that verified, all before good_end
    good_end: int  # byte offset after the last verified record (or the header)
    error: AofFormatError | None  # the first bad line, None when the file is clean
    identity: tuple[int, int, int, int]  # (dev, ino, size, mtime_ns) when it was read
    rest: _Rest  # the lines from the first bad one on

    @property
    def empty(self) -> bool:
        return isinstance(self.error, EmptyAofError)

    @property
    def fixable(self) -> bool:
        """Truncation can repair it: the header is good, something after it is not."""
        return self.error is not None and self.start is not None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def check_file(path: Path) -> Check:
    """Read ``path`` through :class:`AofReader` in chunks and say where it first goes wrong.

    Raises:
        CheckError: the file is missing, unreadable or not a regular file.
    """
    try:
        # stat before open: opening a FIFO would block until a writer appears.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CheckError(f"{path}: not a regular file")
        with open(path, "rb") as source:
            return _read(path, source, os.fstat(source.fileno()))
    except OSError as exc:
        raise CheckError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _read(path: Path, source: BinaryIO, st: os.stat_result) -> Check:
    reader = AofReader()
    error: AofFormatError | None = None
    with byte_progress(st.st_size, path.name) as advance:
        while chunk := source.read(CHUNK_BYTES):
            advance(len(chunk))
            try:
                reader.feed(chunk)
            except AofFormatError as exc:
                error = exc
                break
        else:
            try:
                reader.finish(allow_torn=False)  # its torn-tail message names line and offset
            except AofFormatError as exc:
                error = exc
        if error is None:  # clean: every byte is the header or a verified record
            return Check(path, reader.good_end, reader.records + 1, reader.start, reader.records,
                         reader.good_end, None, _identity(st), _Rest())
        seen = source.tell()
        source.seek(reader.good_end)  # the first bad line starts there (rule 2)
        rest = _scan_rest(source, lambda n: advance(max(0, min(n, source.tell() - seen))))
    return Check(path, reader.good_end + rest.size, error.line - 1 + rest.lines, reader.start,
                 reader.records, reader.good_end, error, _identity(st), rest)


def _scan_rest(source: BinaryIO, advance: Callable[[int], object]) -> _Rest:
    """Count the rest of the file's lines and check each on its own (rule 2's cost)."""
    rest, pending, overlong = _Rest(), bytearray(), False
    while chunk := source.read(CHUNK_BYTES):
        advance(len(chunk))
        rest.size += len(chunk)
        rest.lines += chunk.count(b"\n")
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            if not overlong:
                pending += chunk
                if len(pending) > MAX_LINE_BYTES:  # garbage: skip to the next newline
                    overlong, pending = True, bytearray()
            continue
        block = chunk[:cut]
        if overlong:
            rest.bad, overlong = rest.bad + 1, False
            block = block[block.index(b"\n") + 1:]
        elif pending:
            block = bytes(pending) + block
        _verify_lines(block, rest)
        pending = bytearray(chunk[cut:])
    rest.lines += 1 if pending or overlong else 0
    return rest


def _verify_lines(block: bytes, rest: _Rest) -> None:
    """Run complete lines through fresh readers, restarting after each bad one."""
    pos = 0
    while pos < len(block) and not rest.capped:
        reader = AofReader()
        reader.feed(_SCAN_HEADER)
        try:
            reader.feed(block[pos:] if pos else block)
            reader.feed(b"")  # raises an error kept back for the next call (rule 5 of aof.py)
            pos = len(block)
        except AofFormatError as exc:
            pos = block.index(b"\n", pos + exc.offset - len(_SCAN_HEADER)) + 1
            rest.bad += 1
            rest.capped = rest.bad >= SALVAGE_MAX_BAD_LINES
        rest.good += reader.records


def _span(first: int, last: int) -> str:
    return f"line {first}" if first >= last else f"lines {first}..{last}"


def report(check: Check) -> list[str]:
    """The report's lines, in the stable form scripts can parse (rule 5)."""
    name, error = check.path, check.error
    if check.empty:
        return [f"{name}: empty file (no header), 0 bytes",
                ("--fix cannot help: there is nothing to keep. kv-server treats an empty append-only "
                 "file as absent (a crash right after creating it leaves one), so it may stay or go")]
    if check.start is None:
        assert error is not None
        return [f"{name}: no valid header, {check.size:,} bytes",
                f"first bad record: {error}",
                ("--fix cannot repair this file: its header (line 1) is bad, and truncation only keeps "
                 "records that follow a good header. Is it a kv append-only file?")]
    head = f"{name}: {check.records:,} records, start position {check.start}, {check.size:,} bytes"
    if error is None:
        return [head, "OK"]
    lines = [head, f"first bad record: {error}"]
    if error.torn:
        lines.append("this is a torn last record: the server stopped in the middle of writing it, so "
                     "it was never acknowledged to any client; dropping it loses no saved write")
    elif check.rest.good or check.rest.capped:
        stopped = (f"; the check stopped after {check.rest.bad:,} bad lines, so later records were "
                   "not counted" if check.rest.capped else "")
        lines.append(f"after it, lines that still verify as records on their own: {check.rest.good:,}; "
                     f"lines that do not: {'at least ' * check.rest.capped}{check.rest.bad:,}{stopped}. "
                     "--fix drops them all, so look at the backup first")
    dropped = check.size - check.good_end
    lines.append(f"--fix would keep {check.records:,} records (bytes 0..{check.good_end}) and drop "
                 f"{dropped:,} bytes ({_span(error.line, check.lines)})")
    return lines


def backup_path(path: Path) -> Path:
    """``FILE.bak``, or ``FILE.bak.N`` for the first N that does not exist yet."""
    candidate, n = path.with_name(path.name + ".bak"), 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.bak.{n}")
    return candidate


def _write_backup(path: Path, size: int, mode: int) -> Path:
    """Copy ``path`` whole to a new backup file and make it durable (rule 4)."""
    while True:
        target = backup_path(path)
        try:  # O_EXCL: never overwrite an older backup, even one created meanwhile
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            break
        except FileExistsError:
            continue
    try:
        copied = 0
        with open(path, "rb") as source, open(fd, "wb", closefd=True) as out, \
                byte_progress(size, f"backup {target.name}") as advance:
            while chunk := source.read(CHUNK_BYTES):
                out.write(chunk)
                copied += len(chunk)
                advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if copied != size:
            raise CheckError(f"{path} changed while being copied ({copied} bytes, expected {size}); "
                             "nothing was truncated")
        fsync_directory(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise
    return target


def fix(check: Check) -> list[str]:
    """Back the file up, then cut it at ``good_end``; return what was done.

    Durability:
        The backup is written, fsynced and its directory fsynced before the file is
        touched; the truncation is fsynced before this returns. A crash in between
        leaves the original file intact beside a complete backup.

    Raises:
        CheckError: a kv-server holds the directory, the file changed since it was
            checked, or an I/O error (the original is then untouched).
    """
    path = check.path.resolve()  # the lock to honour is the real file's directory's
    try:
        with server_lock(path.parent, shared=False):
            st = os.stat(path)
            if _identity(st) != check.identity:
                raise CheckError(f"{path} changed since it was checked (is something writing it?); "
                                 "run kv-aof-check again")
            backup = _write_backup(path, check.size, stat.S_IMODE(st.st_mode))
            with open(path, "r+b") as target:
                os.truncate(target.fileno(), check.good_end)
                os.fsync(target.fileno())
    except ServerRunningError as exc:
        raise CheckError(f"{exc}: stop it before --fix") from None
    except OSError as exc:
        raise CheckError(f"{path}: --fix failed: {exc}") from None
    assert check.error is not None
    dropped = check.size - check.good_end
    return [f"backup: {backup} ({check.size:,} bytes)",
            (f"fixed: truncated {path} to {check.good_end} bytes, keeping {check.records:,} records "
             f"and dropping {dropped:,} bytes ({_span(check.error.line, check.lines)})")]


def _confirm(check: Check) -> bool | None:
    """Ask on stdin; None when stdin is not a terminal (nobody to ask)."""
    if not sys.stdin.isatty():
        return None
    dropped = check.size - check.good_end
    sys.stderr.write(f"Truncate {check.path} to {check.good_end} bytes, dropping {dropped:,} bytes? "
                     f"A copy of the whole file is kept in {backup_path(check.path)}. [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Verify a kv append-only file (kv.aof, or an older segment kv.aof.N): the header, "
                    "and every record's line structure, checksum and command. Reports the records "
                    "read, the first bad record (line, byte offset, what is wrong) and what --fix "
                    "would drop. The file is streamed, so any size works.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
exit status:
  0  the file is clean, or --fix repaired it
  1  the file is damaged and was not fixed; a torn last record (a crash in the
     middle of a write, a record never acknowledged) counts as damaged
  2  usage or I/O error: missing file, permission, not a regular file, a
     kv-server running on the directory, or --fix without --yes and no terminal

--fix copies the whole file to FILE.bak (FILE.bak.N when that exists) and
fsyncs it, then truncates FILE at the end of the last record that verified:
it never drops a verified record, but drops every line after the first bad
one, so look at the backup first. It cannot repair a bad header or an empty
file (kv-server treats an empty append-only file as absent).

examples:
  kv-aof-check data/kv.aof
  kv-aof-check --fix data/kv.aof
  kv-aof-check --fix --yes data/kv.aof.2
""",
    )
    parser.add_argument("file", metavar="FILE", type=Path, help="the append-only file to check")
    parser.add_argument("--fix", action="store_true",
                        help="back the file up to FILE.bak, then truncate it to its last good record "
                             "(asks first unless --yes; stop kv-server before)")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="with --fix: do not ask for confirmation (needed when stdin is not a terminal)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kv-aof-check``; return the exit status (rule 5)."""
    args = build_parser().parse_args(argv)
    try:
        check = check_file(args.file)
        print("\n".join(report(check)), flush=True)
        if check.error is None:
            if args.fix:
                print("nothing to fix")
            return EXIT_OK
        if not args.fix or not check.fixable:
            return EXIT_DAMAGED
        if not args.yes:
            answer = _confirm(check)
            if answer is None:
                print(f"{_PROG}: stdin is not a terminal, so --fix cannot ask for confirmation: "
                      "pass --yes to fix without asking", file=sys.stderr)
                return EXIT_ERROR
            if not answer:
                print("not fixed: the file is unchanged")
                return EXIT_DAMAGED
        print("\n".join(fix(check)))
        return EXIT_OK
    except CheckError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return EXIT_ERROR
