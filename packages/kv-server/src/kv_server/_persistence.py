"""Persistence as a service of the running server: start-up, saves, the AOF, INFO.

Rules of this module:

1. :meth:`Persistence.open` runs before any listener opens: it locks the data
   directory, loads the snapshot, replays the AOF, saves if anything was replayed
   and starts a fresh ``kv.aof`` at the position the snapshot covers.
2. Every save takes its position from :meth:`AppendOnlyFile.rotate` at the moment
   the image is taken (SAVE: now; BGSAVE: at the fork), so the snapshot plus the
   records after that position always make the whole dataset.
3. One save at a time: SAVE, BGSAVE and CONVERT answer ``BUSY`` while a
   background save runs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from kv_protocol.errors import BusyError, ServerError

from ._aof import AppendOnlyFile
from ._datadir import AOF, SNAPSHOT, lock, remove
from ._recovery import recover
from ._snapshots import detect_encoding, fork_writer, install, temporary_path, wait_child, write_snapshot

if TYPE_CHECKING:
    from ._state import ServerState

log = logging.getLogger("kv_server")


class Persistence:
    """The data directory of a running server."""

    def __init__(self, state: ServerState, lock_fd: int, aof: AppendOnlyFile, encoding: str) -> None:
        self.state = state
        self.directory = state.config.data_dir
        self.aof = aof
        self.encoding = encoding
        """The snapshot format saves write: ``plaintext`` or ``binary``."""
        self._lock_fd = lock_fd
        self.child: int | None = None
        self.installing = False
        """A finished background save's file is being installed (in a thread): until it
        is, kv.db.tmp is that file, and another save must not open it again."""
        """The pid of the BGSAVE child while one runs."""
        self.last_save = time.time()
        self.last_save_status = "ok"
        self.last_save_error = ""
        self.last_save_ms = 0.0
        self.saves = 0
        self.latest_fork_usec = 0
        """How long the last BGSAVE's fork stopped the server (Redis's field)."""
        self.dirty_at_save = state.keyspace.dirty
        self.loaded: dict[str, object] = {}
        """Start-up figures for INFO: keys loaded, records replayed, seconds taken."""
        self._nursery: trio.Nursery | None = None

    @classmethod
    def open(cls, state: ServerState) -> Persistence:
        """Lock, load, replay and start the AOF (rule 1).

        Raises:
            StartupError: damaged files; OSError: the directory is locked or unreadable.
        """
        config = state.config
        directory = config.data_dir
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = lock(directory)
        try:
            started = time.perf_counter()
            gc.disable()  # loading makes millions of objects and no garbage: 15% faster
            try:
                found = recover(state, directory, config.aof_load_truncated)
            finally:
                gc.enable()
            gc.freeze()  # and the collector need not scan the loaded data again
            snapshot = directory / SNAPSHOT
            encoding = "binary" if config.binary else detect_encoding(snapshot) or "plaintext"
            position = found.position
            saving = time.perf_counter()
            if found.replayed or found.dropped_torn:
                write_snapshot(state.keyspace, temporary_path(directory), encoding, position)
                install(directory, temporary_path(directory))
            saved = time.perf_counter()
            # Older segments go before kv.aof is replaced: a crash in between leaves
            # the old kv.aof, which the snapshot covers, not a gap in the chain.
            remove([path for path in found.segments if path.name != AOF])
            aof = AppendOnlyFile(directory, config.appendfsync, position)
        except BaseException:
            os.close(lock_fd)
            raise
        persistence = cls(state, lock_fd, aof, encoding)
        if snapshot.exists() and not found.replayed:
            persistence.last_save = snapshot.stat().st_mtime
        persistence.loaded = {
            "loaded_keys": len(state.keyspace),
            "loaded_aof_records": found.replayed,
            "loading_seconds": round(time.perf_counter() - started, 3),
            "loading_snapshot_seconds": round(found.snapshot_seconds, 3),
            "loading_aof_seconds": round(found.replay_seconds, 3),
            "loading_save_seconds": round(saved - saving, 3),
        }
        state.dispatcher.aof = aof
        return persistence

    async def run(self) -> None:
        """The AOF flusher and the ``--persist`` timer, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self.aof.run)
            if self.state.config.persist_s is not None:
                nursery.start_soon(self._persist_every, self.state.config.persist_s)

    async def _persist_every(self, seconds: float) -> None:
        while True:
            await trio.sleep(seconds)
            if not self.busy and self.state.keyspace.dirty != self.dirty_at_save:
                try:
                    self.bgsave()
                except (OSError, ServerError) as exc:
                    log.error("periodic background save failed to start: %s", exc)

    @property
    def busy(self) -> bool:
        """A background save is running or being installed."""
        return self.child is not None or self.installing

    def _check_idle(self) -> None:
        if self.busy:
            raise BusyError("a background save is in progress")

    def save(self) -> None:
        """SAVE: write the snapshot now, blocking the event loop."""
        self._check_idle()
        keyspace = self.state.keyspace
        dirty, started = keyspace.dirty, time.perf_counter()
        position = self.aof.rotate()
        written = temporary_path(self.directory)
        try:
            write_snapshot(keyspace, written, self.encoding, position)
            install(self.directory, written)
        except OSError as exc:
            self._failed(f"cannot write {written}: {exc.strerror or exc}")
            _discard(written)  # on a nearly full disk it holds the last free space
            raise ServerError(f"save failed: {self.last_save_error}") from None
        self._saved(position, dirty, started)

    def bgsave(self, encoding: str | None = None) -> None:
        """BGSAVE (and CONVERT): fork a child that writes the snapshot; answer at once."""
        self._check_idle()
        if self._nursery is None:
            raise BusyError("the server is starting")
        keyspace = self.state.keyspace
        dirty, started = keyspace.dirty, time.perf_counter()
        written = temporary_path(self.directory)
        position = self.aof.position
        forking = time.perf_counter()
        try:
            self.child = fork_writer(keyspace, written, encoding or self.encoding, position,
                                     self._lock_fd)
        except OSError as exc:  # ENOMEM, EAGAIN: Redis's classic "can't fork"
            self._failed(f"cannot fork the background save: {exc.strerror or exc}")
            raise ServerError(f"background save failed: {self.last_save_error}") from None
        self.latest_fork_usec = int((time.perf_counter() - forking) * 1e6)
        self.aof.rotate()
        if encoding is not None:
            self.encoding = encoding
        self._nursery.start_soon(self._finish_bgsave, self.child, written, position, dirty, started)

    async def _finish_bgsave(self, pid: int, written: Path, position: int, dirty: int,
                             started: float) -> None:
        try:
            status = await wait_child(pid)
        except BaseException:
            self._stop_child()
            raise
        self.child = None
        if status != 0:
            self._failed(f"the background save exited with status {status} (see the server log)")
            _discard(written)
            return
        # Busy until installed: a save started now would open kv.db.tmp for writing,
        # truncating the finished file just before it is renamed to kv.db.
        self.installing = True
        try:
            await trio.to_thread.run_sync(install, self.directory, written)
        except OSError as exc:
            self._failed(f"cannot install {written}: {exc.strerror or exc}")
            _discard(written)
            return
        finally:
            self.installing = False
        self._saved(position, dirty, started)

    def _saved(self, position: int, dirty: int, started: float) -> None:
        self.last_save, self.last_save_status, self.last_save_error = time.time(), "ok", ""
        self.last_save_ms = (time.perf_counter() - started) * 1000
        self.saves += 1
        self.dirty_at_save = dirty
        self.aof.snapshot_saved(position)

    def _failed(self, reason: str) -> None:
        self.last_save_status, self.last_save_error = "err", reason
        log.error("save failed: %s", reason)

    def _stop_child(self) -> None:
        if self.child is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.child, 0)
        self.child = None
        _discard(temporary_path(self.directory))
        log.warning("background save abandoned: the server is shutting down")

    def close(self) -> None:
        """Shutdown: stop a running BGSAVE, flush and fsync the AOF, release the lock."""
        self._stop_child()
        self.aof.close()
        os.close(self._lock_fd)

    def info(self) -> dict[str, object]:
        """INFO persistence."""
        return {
            **self.loaded,
            "snapshot_file": str(self.directory / SNAPSHOT),
            "snapshot_format": self.encoding,
            "changes_since_last_save": self.state.keyspace.dirty - self.dirty_at_save,
            "bgsave_in_progress": int(self.busy),
            "last_save_time": int(self.last_save),
            "last_save_status": self.last_save_status,
            "last_save_error": self.last_save_error,
            "last_save_duration_ms": round(self.last_save_ms, 3),
            "saves": self.saves,
            "latest_fork_usec": self.latest_fork_usec,
            **self.aof.info(),
        }


def _discard(path: Path) -> None:
    """Remove a failed save's temporary file if possible; a read-only or vanished
    directory (EROFS, ENOENT) is already reported by the failure itself."""
    with contextlib.suppress(OSError):
        path.unlink()
