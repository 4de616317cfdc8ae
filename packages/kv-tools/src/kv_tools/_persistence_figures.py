"""The persistence figures: what BGSAVE costs clients, and how fast start-up reads the files.

kv-bench starts its own kv-servers (on 127.0.0.1, in a temporary directory) because
the figures need restarts and a SIGKILL. On N string keys (16-byte keys, 3-byte
values, loaded with pipelined MSET):

1. BGSAVE stall: a PING loop on one connection, for ``BASELINE_S`` before the
   BGSAVE and then until INFO persistence shows it finished; the longest round
   trip during it, beside the longest before, is the pause the fork and the child
   cause. The server's own ``last_save_duration_ms`` is the BGSAVE's duration.
   The server's ``latest_fork_usec`` is the fork's own share.
2. Snapshot loading: SAVE (plaintext), restart on the directory, read
   ``loading_snapshot_seconds`` and ``loaded_keys``; then CONVERT BINARY,
   restart, again.
3. AOF replay: in a fresh directory, N pipelined SETs (one record each), SIGKILL
   (so nothing folds the AOF into a snapshot), restart, read
   ``loaded_aof_records`` and ``loading_aof_seconds`` (the replay alone: the
   snapshot a start-up writes after a replay is ``loading_save_seconds``).

Every loop is bounded in count and in time, and every server is stopped (or killed)
and its directory removed, whatever happens.
"""

from __future__ import annotations

import select
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._direct import DirectConnection, figure
from ._server_process import KvServer, password_file, start_kv_server
from ._wire import key_name

VALUE: Final = b"xxx"  # 3-byte values, as kv-bench's SET
MSET_KEYS: Final = 1000  # keys per MSET while loading
MSETS_PER_WRITE: Final = 4  # MSETs sent before reading their replies
SETS_PER_WRITE: Final = 2000  # SETs per pipelined write for the AOF records
BASELINE_S: Final = 2.0  # PING round trips before the BGSAVE
MAX_PINGS: Final = 2_000_000  # bounds each PING loop by count as well as by time
INFO_POLL_S: Final = 0.02  # how often the PING loop asks INFO whether the save finished
SAVE_LIMIT_S: Final = 600.0  # the longest a SAVE, BGSAVE or CONVERT may take
LOAD_RATE_FLOOR: Final = 10_000  # keys or records per second start-up must at least reach
START_SLACK_S: Final = 30.0  # interpreter start and imports, on a loaded machine


@dataclass(frozen=True, slots=True)
class Pings:
    """PING round trips of one phase, in milliseconds."""

    count: int
    max_ms: float
    p99_ms: float
    p50_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Pings:
        if not seconds:
            raise RuntimeError("no PING round trip in this phase")
        ms = sorted(s * 1000 for s in seconds)
        p99 = statistics.quantiles(ms, n=100)[98] if len(ms) > 1 else ms[0]
        return cls(len(ms), ms[-1], p99, statistics.median(ms))

    def render(self) -> str:
        return (f"max {self.max_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, p50 {self.p50_ms:.3f} ms "
                f"({self.count:,} pings)")


@dataclass(frozen=True, slots=True)
class Loading:
    """One start-up: what INFO persistence said about it."""

    what: str  # "plaintext", "binary" or "aof"
    items: int  # keys loaded, or AOF records replayed
    seconds: float  # INFO loading_snapshot_seconds, or loading_aof_seconds for "aof"
    file_bytes: int
    ready_s: float  # spawn to ready line, interpreter start included
    written_s: float  # the SAVE, CONVERT or pipelined SETs that wrote the file

    @property
    def per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class SnapshotFigures:
    fill_s: float
    rss_bytes: int
    baseline: Pings
    during: Pings
    bgsave_s: float  # the server's last_save_duration_ms
    bgsave_wall_s: float  # BGSAVE sent to INFO showing it done
    fork_ms: float  # the server's latest_fork_usec
    plaintext: Loading
    binary: Loading


@dataclass(frozen=True, slots=True)
class PersistenceReport:
    keys: int
    appendfsync: str
    snapshots: SnapshotFigures
    replay: Loading

    def render(self) -> str:
        s, r = self.snapshots, self.replay
        rows = [
            (f"{'':11} {'items':>11} {'MiB':>7} {'written s':>10} {'loading s':>10} {'per s':>11} "
             f"{'ready s':>8}"),
            *(f"{x.what:11} {x.items:>11,} {x.file_bytes / 2**20:>7.1f} {x.written_s:>10.2f} "
              f"{x.seconds:>10.2f} {x.per_s:>11,.0f} {x.ready_s:>8.2f}" for x in (s.plaintext, s.binary, r)),
        ]
        return "\n".join([
            (f"persistence figures: {self.keys:,} string keys (16-byte keys, {len(VALUE)}-byte "
             f"values), appendfsync {self.appendfsync}"),
            (f"loaded               {self.keys:,} keys in {s.fill_s:.1f} s (MSET of {MSET_KEYS:,}); "
             f"server RSS {s.rss_bytes / 2**20:.0f} MiB"),
            f"PING before BGSAVE   {s.baseline.render()}",
            f"PING during BGSAVE   {s.during.render()}",
            (f"BGSAVE               {s.bgsave_s:.2f} s (last_save_duration_ms), "
             f"{s.bgsave_wall_s:.2f} s until INFO showed it done; fork {s.fork_ms:.1f} ms"),
            "",
            ("start-up (items: keys loaded, or AOF records replayed; written s: SAVE, CONVERT, or the "
             "SETs; loading s: reading the snapshot, or replaying the AOF, from INFO persistence)"),
            *rows,
        ])


def _bounded(what: str, limit_s: float, done: Callable[[], bool]) -> float:
    """Poll ``done`` every INFO_POLL_S until it is true; the seconds it took."""
    started = time.perf_counter()
    while not done():
        if time.perf_counter() - started > limit_s:
            raise RuntimeError(f"{what} did not finish within {limit_s:g} s")
        time.sleep(INFO_POLL_S)
    return time.perf_counter() - started


def _saves(conn: DirectConnection) -> tuple[int, bool]:
    """INFO persistence's count of finished saves, and whether a BGSAVE runs."""
    info = conn.info("persistence")
    if info.get("last_save_status") != "ok":
        raise RuntimeError(f"the save failed: {info.get('last_save_error')!r}")
    return int(figure(info, "saves")), bool(figure(info, "bgsave_in_progress"))


def fill(conn: DirectConnection, keys: int) -> float:
    """Load ``keys`` string keys with pipelined MSETs; the seconds it took."""
    started = time.perf_counter()
    step = MSET_KEYS * MSETS_PER_WRITE
    for first in range(0, keys, step):
        batch = [["MSET", *[part for n in range(start, min(start + MSET_KEYS, keys))
                            for part in (key_name(n), VALUE)]]
                 for start in range(first, min(first + step, keys), MSET_KEYS)]
        conn.send(*batch)
        conn.replies(len(batch))
    return time.perf_counter() - started


def _answered(conn: DirectConnection) -> bool:
    """Whether ``conn`` has a reply waiting (read and checked: an error reply raises)."""
    if not conn.pending and not select.select([conn.sock], [], [], 0)[0]:
        return False
    conn.replies(1)
    return True


def bgsave_stall(control: DirectConnection, pinger: DirectConnection) -> tuple[Pings, Pings, float]:
    """PING round trips before and during a BGSAVE; and seconds until INFO shows it done."""
    before, _ = _saves(control)
    baseline: list[float] = []
    clock = time.perf_counter
    end = clock() + BASELINE_S
    while clock() < end and len(baseline) < MAX_PINGS:
        sent = clock()
        pinger.call("PING")
        baseline.append(clock() - sent)
    started = clock()
    # Sent on another connection and not waited for, so that the PING loop runs
    # while the server forks; its reply is read (and checked) as it comes.
    control.send(["BGSAVE"])
    answered = False
    during: list[float] = []
    last_poll = started
    while len(during) < MAX_PINGS:
        sent = clock()
        pinger.call("PING")
        now = clock()
        during.append(now - sent)
        if now - last_poll >= INFO_POLL_S:
            last_poll = now
            answered = answered or _answered(control)
            saves, running = _saves(pinger)
            if answered and saves > before and not running:
                return Pings.of(baseline), Pings.of(during), clock() - started
            if now - started > SAVE_LIMIT_S:
                break
    raise RuntimeError(f"BGSAVE did not finish within {SAVE_LIMIT_S:g} s or {MAX_PINGS:,} pings")


def loading(server: KvServer, what: str, expected: int, written_s: float, file_bytes: int) -> Loading:
    """Read INFO persistence on a freshly started server; check it loaded ``expected``."""
    conn = server.connect()
    try:
        info = conn.info("persistence")
    finally:
        conn.close()
    field = "loaded_aof_records" if what == "aof" else "loaded_keys"
    items, keys = int(figure(info, field)), int(figure(info, "loaded_keys"))
    if items != expected or keys != expected:
        raise RuntimeError(f"start-up loaded {keys:,} keys and {field} {items:,}; expected {expected:,}")
    seconds = figure(info, "loading_aof_seconds" if what == "aof" else "loading_snapshot_seconds")
    return Loading(what, items, seconds, file_bytes, server.ready_s, written_s)


class _Servers:
    """Starts servers in one temporary directory; ``close`` kills any still running."""

    def __init__(self, root: Path, keys: int, appendfsync: str) -> None:
        self.root, self.appendfsync = root, appendfsync
        self.password_path, self.password = password_file(root)
        self.start_timeout_s = START_SLACK_S + keys / LOAD_RATE_FLOOR
        self.running: list[KvServer] = []

    def start(self, name: str) -> KvServer:
        server = start_kv_server(self.root / name, self.password_path, self.password,
                                 "--appendfsync", self.appendfsync, start_timeout_s=self.start_timeout_s)
        self.running.append(server)
        return server

    def stop(self, server: KvServer, *, kill: bool = False) -> None:
        self.running.remove(server)
        if kill:
            server.kill()
        else:
            server.stop()

    def restart(self, server: KvServer) -> KvServer:
        self.stop(server)
        return self.start(server.data_dir.name)

    def close(self) -> None:
        for server in self.running:
            server.kill()
        self.running.clear()


def _last_save_s(conn: DirectConnection) -> float:
    return figure(conn.info("persistence"), "last_save_duration_ms") / 1000


def _snapshot_phase(servers: _Servers, keys: int) -> SnapshotFigures:
    server = servers.start("snapshots")
    control, pinger = server.connect(SAVE_LIMIT_S), server.connect()
    try:
        fill_s = fill(control, keys)
        rss = int(figure(control.info("memory"), "used_memory_rss"))
        baseline, during, bgsave_wall_s = bgsave_stall(control, pinger)
        bgsave_s = _last_save_s(control)
        fork_ms = figure(control.info("persistence"), "latest_fork_usec") / 1000
        control.call("SAVE")  # plaintext: the format of a directory without kv.db
        save_s = _last_save_s(control)
    finally:
        control.close()
        pinger.close()
    server = servers.restart(server)
    snapshot = server.data_dir / "kv.db"
    plaintext = loading(server, "plaintext", keys, save_s, snapshot.stat().st_size)
    control = server.connect(SAVE_LIMIT_S)
    try:
        before, _ = _saves(control)
        control.call("CONVERT", "BINARY")
        _bounded("CONVERT BINARY", SAVE_LIMIT_S, lambda: _saves(control) == (before + 1, False))
        convert_s = _last_save_s(control)
    finally:
        control.close()
    server = servers.restart(server)
    binary = loading(server, "binary", keys, convert_s, snapshot.stat().st_size)
    servers.stop(server)
    return SnapshotFigures(fill_s, rss, baseline, during, bgsave_s, bgsave_wall_s, fork_ms, plaintext,
                           binary)


def _replay_phase(servers: _Servers, keys: int) -> Loading:
    server = servers.start("aof")
    conn = server.connect()
    try:
        started = time.perf_counter()
        for first in range(0, keys, SETS_PER_WRITE):
            numbers = range(first, min(first + SETS_PER_WRITE, keys))
            conn.send(*[["SET", key_name(n), VALUE] for n in numbers])
            conn.replies(len(numbers))
        written_s = time.perf_counter() - started
        aof_bytes = int(figure(conn.info("persistence"), "aof_size"))
    finally:
        conn.close()
    # Every record reached the kernel before its reply, so SIGKILL loses none; a
    # SIGTERM would not fold them either, but a kill is the case replay exists for.
    servers.stop(server, kill=True)
    server = servers.start("aof")
    found = loading(server, "aof", keys, written_s, aof_bytes)
    servers.stop(server)
    return found


def measure_persistence(keys: int, *, appendfsync: str = "everysec",
                        parent: Path | None = None) -> PersistenceReport:
    """Run the three measurements on servers this function starts and always stops.

    Args:
        keys: string keys to load (and AOF records to replay).
        appendfsync: the servers' ``--appendfsync``.
        parent: where the temporary directory goes (the disk under test); default
            the system's temporary directory.

    Raises:
        RuntimeError: a server failed, a figure is missing, or a bound was reached.
        OSError: a connection or a file failed.
    """
    root = Path(tempfile.mkdtemp(prefix="kv-persistence-", dir=parent))
    servers = _Servers(root, keys, appendfsync)
    try:
        snapshots = _snapshot_phase(servers, keys)
        replay = _replay_phase(servers, keys)
    finally:
        servers.close()
        shutil.rmtree(root, ignore_errors=True)
    return PersistenceReport(keys, appendfsync, snapshots, replay)
