"""The data directory: its file names, its lock, and the fsync that makes a rename durable.

Rules of this module:

1. One server per directory: ``kv.lock`` is held with ``flock`` for the process's
   life. The kernel drops the lock when the process dies, even by SIGKILL, so a
   crash never leaves a stale lock behind.
2. A file is replaced by writing a temporary file in the same directory, fsyncing
   it, renaming it over the old name and fsyncing the directory: at every instant
   the name holds either the whole old file or the whole new one.
3. The append-only file is a chain of segments: ``kv.aof`` is the one being written;
   ``kv.aof.1``, ``kv.aof.2``, ... are older ones that a snapshot in progress does
   not cover yet (see ``_aof.py``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path
from typing import BinaryIO, Final

SNAPSHOT: Final = "kv.db"
OLD_SNAPSHOT: Final = "kv.db.old"
AOF: Final = "kv.aof"
LOCK: Final = "kv.lock"
_SEGMENT: Final = re.compile(r"kv\.aof\.([0-9]{1,9})")


class DataDirLockedError(OSError):
    """Another server holds the directory's lock."""


def lock(directory: Path) -> int:
    """Take the directory's lock; the returned descriptor holds it until closed.

    Raises:
        DataDirLockedError: another process holds it.
    """
    path = directory / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirLockedError(
                exc.errno, f"{directory} is in use by another kv-server (pid {holder})") from None
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def fsync_directory(directory: Path) -> None:
    """Make renames and unlinks in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_private(path: Path) -> BinaryIO:
    """``path`` opened for writing from empty, readable by the server's user only.

    The data files hold every value in clear, so they get 0600 whatever the umask
    (a leftover file of that name is truncated and narrowed too).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return open(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def write_durably(path: Path, chunks: list[bytes] | tuple[bytes, ...]) -> None:
    """Replace ``path`` with ``chunks`` by rule 2."""
    temporary = path.with_name(path.name + ".tmp")
    with create_private(temporary) as out:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    fsync_directory(path.parent)


def segments(directory: Path) -> list[tuple[int, Path]]:
    """The older AOF segments, oldest first, as ``(number, path)``."""
    found = []
    for path in directory.iterdir():
        match = _SEGMENT.fullmatch(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def remove(paths: list[Path]) -> None:
    """Unlink ``paths`` (missing ones are fine) and make that durable."""
    if not paths:
        return
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    fsync_directory(paths[0].parent)
