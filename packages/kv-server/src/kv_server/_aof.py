"""The append-only file of a running server: write-ahead logging with group commit.

Rules of this module:

1. Write-ahead: a write command's record is appended to :attr:`AppendOnlyFile.pending`
   when it runs; its connection sends no reply until the group holding the record
   is written (and, with ``always``, fsynced). See ``_connection.py``.
2. Group commit: one flusher task takes every record logged since its last turn,
   from every connection, and writes them with one ``write`` (and one fsync with
   ``always``). Connections that ran in the same event-loop turn share a group; with
   ``always``, records logged while an fsync runs form the next group.
3. ``everysec`` fsyncs from a worker thread once a second, on a duplicate of the
   descriptor, so the event loop never waits for the disk; ``no`` leaves it to the
   kernel. Every policy fsyncs a segment before it is closed.
4. Failure closes writes, not the server: a failed write is cut back to the last
   complete record (``ftruncate``), its group's writes are answered ``MISCONF``
   instead of being acknowledged, and :attr:`AppendOnlyFile.error` makes dispatch
   refuse new writes. Records not written are kept and retried every second; the
   error clears when the retry succeeds. A failed fsync cannot be retried (the
   kernel may have dropped the pages it did not write), nor can a failed segment
   change; those clear only when a save succeeds: the snapshot then holds
   everything, and a new ``kv.aof`` replaces the broken chain.
5. Positions are logical: bytes of records since the data directory was created,
   across segments. A snapshot records the position it covers; at each save the
   active segment is closed (renamed ``kv.aof.N``) and a new ``kv.aof`` starts at
   that position, so records written while a BGSAVE runs land in the new segment.
   Segments wholly below the position of the newest snapshot are deleted.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from kv_protocol.records.aof import TRANSACTION, encode_header, encode_record

from ._config import FsyncPolicy
from ._datadir import AOF, remove, write_durably

log = logging.getLogger("kv_server")

# A failed write is retried this often, and the everysec policy syncs this often.
RETRY_S = 1.0
EVERYSEC_S = 1.0


class Group:
    """The records of one flush: connections wait on ``done``, then read ``error``."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: str | None = None


@dataclass(frozen=True, slots=True)
class Segment:
    """A closed segment and the logical positions it spans."""

    path: Path
    start: int
    end: int


class AppendOnlyFile:
    """The active segment, the records waiting to be written, and the chain's state.

    Only the flusher (:meth:`run`) touches the files; the event loop's commands only
    queue records and requests (:meth:`log`, :meth:`rotate`, :meth:`snapshot_saved`),
    so no file change ever interleaves with a commit that awaits an fsync.
    """

    def __init__(self, directory: Path, policy: FsyncPolicy, start: int) -> None:
        self.directory = directory
        self.path = directory / AOF
        self.policy = policy
        self.frozen: list[Segment] = []
        """Closed segments still needed: no snapshot covers them yet."""
        self.next_segment = 1
        self.pending: list[bytes] = []
        self.group = Group()
        """The group the records in :attr:`pending` belong to."""
        self.error: str | None = None
        """Why writes are refused (rule 4), or None."""
        self.broken = False
        """Whether the failure is one a retry cannot fix (rule 4)."""
        self.unwritten = b""
        self.covered = start
        """The position the newest snapshot covers."""
        self.fsyncs = 0
        self.last_fsync_ms = 0.0
        self.position = start
        """The logical position after the last record logged (written or not)."""
        self._wanted = trio.Event()
        self._rotate_at: int | None = None
        self._restart_at: int | None = None
        self._use(*create_segment(self.path, start), start)

    def _use(self, fd: int, size: int, start: int) -> None:
        self.fd = fd
        """The active segment's descriptor; -1 while there is none (after a failure)."""
        self.start = start
        self.size = size
        """Bytes in the active segment's file."""
        self.written = self.synced = start

    # Called from command dispatch (synchronous, on the event loop).

    def log(self, timestamp_ms: int, argv: list[object]) -> None:
        """Queue one write command's record for the next group (rule 1).

        A command whose record cannot be encoded, or would be longer than a reader
        accepts (a frame-sized value that JSON more than doubles), already ran: its
        group fails, and writes are refused until a save holds what the log cannot.
        """
        try:
            record = encode_record(timestamp_ms, argv)
        except (TypeError, ValueError) as exc:
            self.broken = True
            self._fail(f"a {argv[0]} command could not be logged ({exc}); run SAVE or BGSAVE",
                       None)
            self._wanted.set()
            return
        self._queue(record)

    def log_transaction(self, timestamp_ms: int, commands: list[list[object]]) -> None:
        """Queue a transaction's writes as one record (``["MULTI", argv, ...]``).

        A transaction too long for one record (each command fits a frame, their sum
        need not) is logged command by command: it loses only its all-or-nothing
        replay after a crash in the middle of writing it, not its durability. (A
        value no record can hold fails its own command's record there, as in ``log``.)
        """
        try:
            record = encode_record(timestamp_ms, [TRANSACTION, *commands])
        except (TypeError, ValueError) as exc:
            log.warning("a transaction of %d writes is logged as separate records: %s",
                        len(commands), exc)
            for argv in commands:
                self.log(timestamp_ms, argv)
            return
        self._queue(record)

    def _queue(self, record: bytes) -> None:
        if not self.pending:
            self._wanted.set()
        self.pending.append(record)
        self.position += len(record)

    def rotate(self) -> int:
        """Start a new segment at the current position; the position a snapshot taken now covers.

        Records queued so far go to the closing segment, records logged from now on
        to the new one.
        """
        self._rotate_at = len(self.pending)
        self._wanted.set()
        return self.position

    def snapshot_saved(self, position: int) -> None:
        """A snapshot covering ``position`` is on disk: segments below it may go.

        After a failure, a snapshot that holds every logged change also replaces the
        broken chain with a new ``kv.aof`` (rule 4).
        """
        self.covered = max(self.covered, position)
        if self.error is not None and position >= self.position:
            self._restart_at = position
        self._wanted.set()

    # The flusher.

    async def run(self) -> None:
        """Write groups as they form; retry after a failure; fsync once a second."""
        async with trio.open_nursery() as nursery:
            if self.policy is FsyncPolicy.EVERYSEC:
                nursery.start_soon(self._sync_every_second)
            while True:
                retry = self.unwritten and not self.broken
                with trio.move_on_after(RETRY_S if retry else float("inf")):
                    await self._wanted.wait()
                self._wanted = trio.Event()
                await self.step()

    async def step(self) -> None:
        """One turn of the flusher: a restart or retry if due, a commit, a clean-up."""
        if self._restart_at is not None:
            await self._restart(self._restart_at)
        elif self.unwritten and not self.broken:
            self._retry()
        await self._commit()
        await self._drop_covered()

    async def _commit(self) -> None:
        group, self.group = self.group, Group()
        pending, self.pending = self.pending, []
        rotate_at, self._rotate_at = self._rotate_at, None
        if self.error is not None:  # a snapshot that succeeds restarts the chain
            self.unwritten += b"".join(pending)
            group.error = self.error
            group.done.set()
            return
        remaining = pending
        try:
            if rotate_at is not None:
                self._write(b"".join(pending[:rotate_at]))
                remaining = pending[rotate_at:]
                await self._start_segment()
            if remaining:
                self._write(b"".join(remaining))
                remaining = []
                if self.policy is FsyncPolicy.ALWAYS:
                    await self._fsync(self.fd)
        except OSError as exc:
            self.unwritten = b"".join(remaining)
            if self.error is None:  # a rename or create failed, not a write or an fsync
                self.broken = True
                self._fail(f"cannot start a new segment in {self.directory}", exc)
            group.error = self.error
        finally:
            group.done.set()

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as exc:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                log.exception("cannot cut %s back to its last complete record", self.path)
            self._fail(f"cannot write {self.path}", exc)
            raise
        self.size += len(data)
        self.written += len(data)

    def _retry(self) -> None:
        try:
            self._write(self.unwritten)
            self.unwritten = b""
            if self.policy is not FsyncPolicy.NO:
                os.fsync(self.fd)
                self.synced = self.written
        except OSError as exc:
            if not self.unwritten:  # written, but the fsync failed: rule 4
                self.broken = True
                self._fail(f"cannot fsync {self.path}", exc)
            return
        self._clear_error("the append-only file is writable again")

    async def _restart(self, position: int) -> None:
        """A new chain at ``position``, which a snapshot covers: recovery from any failure."""
        self._restart_at = None
        if self.position > position:  # logged since the snapshot: it does not hold that
            return
        # Whatever was queued ran before the snapshot was taken: it is in there.
        group, self.group = self.group, Group()
        self.pending, self.unwritten, self._rotate_at = [], b"", None
        group.done.set()
        self._close_fd()
        old, self.frozen = [segment.path for segment in self.frozen], []
        try:
            # Old segments go first: a crash in between must not leave a new kv.aof
            # after segments that end before it starts.
            await trio.to_thread.run_sync(remove, old)
            fd, size = await trio.to_thread.run_sync(create_segment, self.path, position)
        except OSError as exc:
            self._fail(f"cannot start a new {self.path}", exc)
            return
        self._use(fd, size, position)
        self._clear_error("a snapshot now holds every change")

    async def _fsync(self, fd: int) -> None:
        target = self.written
        started = time.perf_counter()
        try:
            await trio.to_thread.run_sync(os.fsync, fd)
        except OSError as exc:
            self.broken = True
            self._fail(f"cannot fsync {self.path}", exc)
            raise
        self.last_fsync_ms = (time.perf_counter() - started) * 1000
        self.fsyncs += 1
        self.synced = max(self.synced, target)

    async def _sync_every_second(self) -> None:
        while True:
            await trio.sleep(EVERYSEC_S)
            if self.synced < self.written and self.error is None:
                try:
                    fd = os.dup(self.fd)  # rule 3: the flusher may close self.fd meanwhile
                except OSError as exc:
                    log.error("cannot fsync %s: %s", self.path, exc)
                    continue
                try:
                    await self._fsync(fd)
                except OSError:
                    pass  # _fsync refused writes and logged why
                finally:
                    os.close(fd)

    async def _start_segment(self) -> None:
        """Close the active segment as ``kv.aof.N`` and start ``kv.aof`` at its end (rule 5)."""
        await self._fsync(self.fd)
        closed = self.directory / f"{AOF}.{self.next_segment}"
        self.next_segment += 1
        os.rename(self.path, closed)
        self.frozen.append(Segment(closed, self.start, self.written))
        self._close_fd()
        fd, size = await trio.to_thread.run_sync(create_segment, self.path, self.written)
        self._use(fd, size, self.written)

    async def _drop_covered(self) -> None:
        covered = [segment for segment in self.frozen if segment.end <= self.covered]
        if covered:
            self.frozen = [segment for segment in self.frozen if segment.end > self.covered]
            try:
                await trio.to_thread.run_sync(remove, [segment.path for segment in covered])
            except OSError as exc:
                log.error("cannot delete AOF segments a snapshot covers: %s", exc)

    def _close_fd(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def _fail(self, what: str, exc: OSError | None) -> None:
        self.error = what if exc is None else f"{what}: {exc.strerror or exc}"
        log.error("%s; writes are refused until it can be written (see INFO persistence)",
                  self.error)

    def _clear_error(self, why: str) -> None:
        if self.error is not None:
            log.warning("%s; accepting writes again", why)
        self.error, self.broken = None, False

    def close(self) -> None:
        """Write what is queued, fsync and close (graceful shutdown; blocks)."""
        data = self.unwritten + b"".join(self.pending)
        self.pending, self.unwritten = [], b""
        try:
            if data and not self.broken:
                self._write(data)
            if self.fd >= 0:
                os.fsync(self.fd)
        except OSError as exc:
            log.error("cannot flush %s at shutdown: %s", self.path, exc)
        finally:
            self._close_fd()

    def info(self) -> dict[str, object]:
        """The AOF's part of INFO persistence."""
        return {
            "aof_file": str(self.path),
            "aof_size": self.size,
            "aof_segments": len(self.frozen) + 1,
            "aof_position": self.position,
            "aof_pending_bytes": self.position - self.written,
            "aof_fsync_policy": str(self.policy),
            "aof_fsyncs": self.fsyncs,
            "aof_last_fsync_latency_ms": round(self.last_fsync_ms, 3),
            "aof_last_write_status": "ok" if self.error is None else "err",
            "aof_last_error": self.error or "",
        }


def create_segment(path: Path, start: int) -> tuple[int, int]:
    """A new, durable ``kv.aof`` holding only its header; its descriptor and size."""
    header = encode_header(start)
    write_durably(path, [header])
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC), len(header)
