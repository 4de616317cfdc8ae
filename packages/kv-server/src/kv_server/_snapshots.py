"""Snapshot files: writing one (in the server or a forked child), installing it, loading it.

Rules of this module:

1. A snapshot is written to ``kv.db.tmp``, fsynced, then installed: the current
   ``kv.db`` is hard-linked as ``kv.db.old``, the new file renamed over ``kv.db``,
   and the directory fsynced. At every instant ``kv.db`` is a complete snapshot.
2. BGSAVE forks. The child sees the keyspace exactly as it was at the fork (the
   kernel copies pages on write), so the image is consistent without pausing the
   server for longer than the fork itself; the child writes the file and leaves
   with ``os._exit``, never returning into the parent's event loop. It closes every
   inherited descriptor but the data directory's lock (a listening socket kept open
   by a child would keep the port and swallow connections), and on Linux it dies
   with its parent: a killed server leaves no writer behind to race a new one.
3. The file formats are ``kv_protocol.records.snapshot``'s; this module does the I/O.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import itertools
import os
import resource
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import trio

from kv_protocol.records.snapshot import Kind, SnapshotHeader, SnapshotReader, SnapshotWriter
from kv_protocol.records.snapshot import detect_encoding as encoding_of
from kv_protocol.values import Key

from ._datadir import OLD_SNAPSHOT, SNAPSHOT, create_private, fsync_directory
from ._keyspace import Keyspace, KvHash, KvList

# Files are read in chunks of this size, and entries encoded this many at a time.
CHUNK_BYTES: Final = 1 << 20
BATCH_ENTRIES: Final = 4096
# How often a parent without pidfd support looks whether its child finished.
_POLL_S: Final = 0.01
_PR_SET_PDEATHSIG: Final = 1  # from <linux/prctl.h>
# Looked up before any fork: loading a library in the child of a threaded process
# could wait forever on a lock some other thread held at the fork.
_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


def _entries(keyspace: Keyspace) -> Iterator[tuple[Key, Kind, Any, int | None]]:
    expires = keyspace.expires
    value: Any
    for key, value in keyspace.data.items():
        kind = type(value)
        if kind is KvList:
            yield key, "list", list(value), expires.get(key)
        elif kind is KvHash:
            yield key, "hash", dict(value), expires.get(key)
        else:
            yield key, "string", value, expires.get(key)


def write_snapshot(keyspace: Keyspace, path: Path, encoding: str, position: int) -> None:
    """Write the whole keyspace to ``path`` and fsync it.

    Keys whose deadline has passed are written too (with their deadline): loading
    drops them, and counting them first would cost a pass over the keyspace.
    """
    writer = SnapshotWriter(encoding, len(keyspace.data), position, time.time_ns() // 1_000_000)
    entries = _entries(keyspace)
    with create_private(path) as out:
        out.write(writer.header())
        while batch := list(itertools.islice(entries, BATCH_ENTRIES)):
            out.write(writer.entries(batch))
        out.write(writer.trailer())
        out.flush()
        os.fsync(out.fileno())


def install(directory: Path, written: Path) -> None:
    """Make ``written`` the snapshot and keep the previous one as kv.db.old (rule 1)."""
    current, old = directory / SNAPSHOT, directory / OLD_SNAPSHOT
    if current.exists():
        keep = directory / (OLD_SNAPSHOT + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            keep.unlink()
        os.link(current, keep)
        os.replace(keep, old)
    os.replace(written, current)
    fsync_directory(directory)


def temporary_path(directory: Path) -> Path:
    return directory / (SNAPSHOT + ".tmp")


def load_snapshot(path: Path, keyspace: Keyspace) -> SnapshotHeader:
    """Load the snapshot at ``path`` into an empty keyspace.

    Raises:
        kv_protocol.records.snapshot.SnapshotFormatError: the file is not a complete, intact
            snapshot; the keyspace is then partly filled and must be discarded.
    """
    reader = SnapshotReader()
    load = keyspace.load
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK_BYTES):
            for key, kind, value, deadline in reader.feed(chunk):
                if kind == "list":
                    load(key, KvList(value), deadline)  # type: ignore[arg-type]
                elif kind == "hash":
                    load(key, KvHash(value), deadline)  # type: ignore[arg-type]
                else:
                    load(key, value, deadline)
    return reader.finish()


def detect_encoding(path: Path) -> str | None:
    """The encoding of the snapshot at ``path`` from its first bytes, or None."""
    try:
        with open(path, "rb") as source:
            return encoding_of(source.read(3))
    except FileNotFoundError:
        return None


def fork_writer(keyspace: Keyspace, path: Path, encoding: str, position: int, lock_fd: int) -> int:
    """Fork a child that writes the snapshot (rule 2); its pid.

    The child only runs :func:`write_snapshot` and exits: it holds no lock another
    thread could have held at the fork, which is what makes forking a process with
    worker threads safe here (hence the suppressed warning).
    """
    parent = os.getpid()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        gc.disable()  # a collection would touch, and so copy, every page of the dataset
        _die_with_parent(parent)
        os.closerange(3, lock_fd)
        os.closerange(lock_fd + 1, _max_fd())
        write_snapshot(keyspace, path, encoding, position)
        status = 0
    except BaseException:
        print(f"kv-server: background save to {path} failed:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    finally:
        os._exit(status)


def _die_with_parent(parent: int) -> None:
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _max_fd() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft if soft != resource.RLIM_INFINITY else 65536


async def wait_child(pid: int) -> int:
    """Wait for the child ``pid`` without blocking the event loop; its exit status."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: poll instead
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            await trio.sleep(_POLL_S)
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
