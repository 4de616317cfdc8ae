"""What the tools share about a data directory: kv-server's lock, and durable renames.

kv-server holds ``DIR/kv.lock`` with ``flock`` for its whole life. A tool that must
not run beside a server (``kv-aof-check --fix`` truncating, ``kv-convert --from-aof``
copying) takes the same lock without waiting: if a server holds it, the tool stops
and names the server's pid, which the server writes into the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

LOCK: Final = "kv.lock"  # kv_server._datadir.LOCK: the tools do not import the server


class ServerRunningError(Exception):
    """A kv-server holds the directory; the message names it."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(f"{directory} is in use by a running kv-server (pid {holder})")


@contextlib.contextmanager
def server_lock(directory: Path, *, shared: bool) -> Iterator[None]:
    """Hold ``directory``'s kv-server lock, if it has one, for the ``with`` block.

    ``shared`` lets several readers in at once while keeping a server out.

    Raises:
        ServerRunningError: a kv-server holds the lock.
    """
    try:
        fd = os.open(directory / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield  # not a server's data directory (a copy being repaired elsewhere)
        return
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise ServerRunningError(directory, holder) from None
        yield
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in ``directory`` durable.

    kv_server._datadir has the same five lines: kv-tools may not depend on kv-server,
    and kv-protocol, which both share, does no file I/O.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
