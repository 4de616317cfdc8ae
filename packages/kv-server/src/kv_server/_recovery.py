"""Start-up: load the snapshot, then replay the AOF chain after the position it covers.

Rules of this module:

1. Nothing damaged is skipped silently. A corrupt snapshot or record stops start-up
   with a message naming the file, the line or entry, the byte offset and the
   reason, and the tool that repairs it. The one exception is a torn last record
   of the last segment (the server died while writing it), and only when the
   operator allows it with ``--aof-load-truncated``; it was never acknowledged.
2. Records are replayed in order, each with the keyspace clock set to its
   timestamp, so every expiry decision is the one the server made when the
   command ran (see ``CommandClock``).
3. The chain must be continuous: each segment starts where the previous one ended,
   and the first starts at or before the snapshot's position. A gap means records
   are missing, which is refused like corruption.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from kv_protocol.errors import RemoteProtocolError, ServerError
from kv_protocol.records.aof import TRANSACTION, AofFormatError, AofReader, AofRecord
from kv_protocol.records.snapshot import SnapshotFormatError, SnapshotHeader

from ._datadir import AOF, OLD_SNAPSHOT, SNAPSHOT, segments
from ._snapshots import CHUNK_BYTES, load_snapshot

if TYPE_CHECKING:
    from ._state import ServerState

log = logging.getLogger("kv_server")

_DOCS: Final = "see docs/persistence.md, 'Recovering from damaged files'"


class StartupError(Exception):
    """The data directory cannot be loaded as it is; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """What start-up found."""

    position: int
    """The logical AOF position the dataset in memory now covers."""
    snapshot_seconds: float
    replayed: int
    replay_seconds: float
    dropped_torn: bool
    segments: list[Path]
    """Every AOF file read, oldest first (all are covered once a snapshot is saved)."""


class _ReplayClock:
    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def recover(state: ServerState, directory: Path, allow_torn: bool) -> Recovered:
    """Fill ``state.keyspace`` from the data directory.

    Raises:
        StartupError: a damaged snapshot or AOF, or a gap in the AOF chain.
    """
    started = time.perf_counter()
    snapshot_path = directory / SNAPSHOT
    header: SnapshotHeader | None = None
    if snapshot_path.exists():
        try:
            header = load_snapshot(snapshot_path, state.keyspace)
        except SnapshotFormatError as exc:
            raise StartupError(
                f"{snapshot_path}: {exc}. The snapshot is damaged; the previous one, if any, "
                f"is {directory / OLD_SNAPSHOT}. Inspect it with kv-convert --stats; {_DOCS}."
            ) from None
    covered = 0
    if header is not None:
        covered = header.aof_position
        # Keys that had expired when the snapshot was taken stay expired even if
        # the wall clock now reads earlier (see CommandClock).
        state.clock.now = max(state.clock.now, header.created_ms)
    files = [path for _, path in segments(directory)]
    if (directory / AOF).exists():
        files.append(directory / AOF)
    files = [path for path in files if path.stat().st_size > 0]
    loaded = time.perf_counter()
    replay = _Replay(state, covered)
    expected = covered
    dropped = False
    for index, path in enumerate(files):
        reader = replay.file(path)
        assert reader.start is not None and reader.end_position is not None  # header read
        # A gap is only a gap if the snapshot does not cover it; an overlap never fits.
        if reader.start > max(expected, covered) or (index and reader.start < expected):
            raise StartupError(
                f"{path} starts at log position {reader.start}, but what precedes it ends at "
                f"{expected}: records are missing (a deleted segment or snapshot?); {_DOCS}."
            )
        expected = reader.end_position
        if replay.torn is not None:
            if index != len(files) - 1 or not allow_torn:
                raise StartupError(_torn_message(path, replay.torn, last=index == len(files) - 1))
            log.warning("%s: dropped a torn last record at byte offset %d (--aof-load-truncated)",
                        path, replay.torn.offset)
            dropped = True
    return Recovered(max(expected, covered), loaded - started, replay.count,
                     time.perf_counter() - loaded, dropped, files)


class _Replay:
    """Reads AOF files and applies their records past the covered position (rule 2)."""

    def __init__(self, state: ServerState, covered: int) -> None:
        from ._session import Session

        self.state = state
        self.covered = covered
        self.count = 0
        self.torn: AofFormatError | None = None
        self.session = Session(state, 0, transport="aof", addr="", laddr="")
        self.dispatcher = state.dispatcher.for_replay()
        # A blocking command is logged only when a key it looked at expired and it took
        # nothing: replayed, it must answer at once, as it does inside EXEC.
        self.session.executing = True

    def file(self, path: Path) -> AofReader:
        reader = AofReader()
        self.torn = None
        keyspace = self.state.keyspace
        clock, replay_clock = keyspace.clock, _ReplayClock()
        keyspace.clock = replay_clock
        try:
            with open(path, "rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    for record in reader.feed(chunk):
                        replay_clock.now = record.timestamp_ms
                        self._apply(path, record)
            reader.finish(allow_torn=False)
        except AofFormatError as exc:
            if not exc.torn or reader.start is None:
                raise StartupError(
                    f"{path}: {exc}. Run `kv-aof-check {path}` to see the damage and "
                    f"`kv-aof-check --fix {path}` to cut the file back to its last good record "
                    f"(it keeps a backup); {_DOCS}."
                ) from None
            self.torn = exc
        finally:
            keyspace.clock = clock
            self.state.clock.now = max(self.state.clock.now, replay_clock.now)
        return reader

    def _apply(self, path: Path, record: AofRecord) -> None:
        end = record.position + (record.end - record.offset)
        if end <= self.covered:
            return
        where = f"{path}: line {record.line}, byte offset {record.offset}"
        if record.position < self.covered:
            raise StartupError(f"{where}: the snapshot's position {self.covered} falls inside "
                               f"this record; {_DOCS}.")
        try:
            if record.argv[0] == TRANSACTION:
                for argv in record.argv[1:]:
                    self._run(argv)
            else:
                self._run(record.argv)
        except (ServerError, RemoteProtocolError) as exc:
            raise StartupError(f"{where}: replaying the record failed: {exc}; {_DOCS}.") from None
        self.count += 1

    def _run(self, argv: Any) -> None:
        """Apply one logged write command; ServerError if it is not one or fails."""
        entry = self.dispatcher.entry_for(argv)
        if not entry.write:
            raise ServerError(f"{entry.spec.name} is not a write command")
        entry.handler(self.session, argv)
        self.session.log_as = None


def _torn_message(path: Path, exc: AofFormatError, *, last: bool) -> str:
    if not last:
        return (f"{path}: {exc}: a torn record in a segment that is not the last one means "
                f"records after it may be lost; run `kv-aof-check {path}`; {_DOCS}.")
    return (f"{path}: {exc}: the last record is incomplete (the server stopped while writing it; "
            f"it was never acknowledged). Start with --aof-load-truncated to drop it, or cut it "
            f"off with `kv-aof-check --fix {path}`.")
