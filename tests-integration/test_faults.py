"""Faults (issue 8): clients that vanish at awkward moments, a data directory that fills
up or turns read-only, SIGTERM during a background save.

What must hold: nothing acknowledged is lost, and the server keeps serving or fails
closed with a clear message (docs/persistence.md "When the disk fails",
docs/operations.md "The server runs, but refuses writes").

Client disconnects, each by an orderly close (FIN) and by a reset (RST, through
``SO_LINGER`` 0): half a frame sent; a pipeline sent and its replies never read;
MULTI with queued writes (and an EXEC cut mid-frame); blocked in BLPOP; subscribed
with unread messages; a large reply half read. After each, the server serves a
checker client whose data is intact, ``connected_clients`` is back at its baseline,
and nothing the vanished client began is half done.

The data directory, through real filesystems, in this order of preference:

- *Disk full*: a small tmpfs mounted at the data directory (an ext4 image on a loop
  device when tmpfs may not be mounted; skipped, with the mount errors, when neither
  may be), filled by a ballast file inside it. The machine's shared disk is never filled.
- *Read-only*: ``mount -o remount,ro`` is refused with EBUSY while any file on the
  filesystem is open for writing, and a running server always holds ``kv.aof`` open,
  so a live data directory cannot be made read-only that way. A read-only bind mount
  over the directory does what the kernel does allow: creating, renaming and deleting
  files fails with EROFS, while the already-open ``kv.aof`` keeps taking appends,
  exactly as a ``chmod a-w`` directory behaves for a non-root server (``chmod`` itself
  does not stop root, whose CAP_DAC_OVERRIDE bypasses it; it is the fallback when the
  tests do not run as root).

Already covered elsewhere, so not repeated here:

- test_robustness.py::test_peer_vanishing_mid_frame: FIN mid-frame (here also RST,
  a cut inside the length prefix, and the connection count);
  test_fuzz_live.py: hostile connections, frames cut off by a disconnect.
- test_blocking.py: a blocked client's close, CLIENT KILL and SIGKILL leave no waiter
  behind, and test_a_push_right_after_a_blocked_client_closes_is_not_lost (FIN); the
  blocked tests here add RST and a second waiter behind the one that vanishes.
- test_pubsub.py::test_a_subscriber_that_goes_away_is_forgotten (FIN, SIGKILL);
  test_transactions.py::test_a_disconnected_watcher_leaves_no_watch_behind (WATCH
  without MULTI).
- test_persistence.py::test_writes_are_refused_while_the_aof_cannot_be_written: a
  per-process "disk full" (RLIMIT_FSIZE makes write() fail with EFBIG); here the
  filesystem really is full (ENOSPC), and saves meet it too.
- test_persistence.py::test_sigterm_during_bgsave_stops_cleanly and
  ::test_a_killed_server_takes_its_bgsave_child_with_it: SIGTERM and SIGKILL during a
  300k-key BGSAVE; here also writes acknowledged while the save ran, the shutdown
  grace, and the files left behind.

These tests found two server bugs, since fixed: a BGSAVE failing on a read-only mount
took the server down (removing kv.db.tmp failed with EROFS), and a SAVE failing for
lack of space left its kv.db.tmp holding the space the AOF needed.

Every loop is bounded in count and time; servers bind to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from integration_helpers import PASSWORD, STARTED, RawConnection, ServerProcess, start_server
from kv_client import Client, KvError, MisconfError
from kv_protocol.framing import encode_frame
from kv_protocol.messages import REPLY, decode_message
from kv_protocol.records.aof import AofReader

MIB: Final = 1 << 20
SETTLE_S: Final = 10.0
"""The longest any condition polled here may take to become true."""
RECOVERY_S: Final = 10.0
"""How long writes may stay refused after the disk recovers (the AOF retries every second)."""
PIPELINE_COMMANDS: Final = 3000
"""About 60 KB of frames: more than one read, so a reset lands with some of them unread."""
BIG_REPLY_BYTES: Final = 8 * MIB
"""Far more than both sockets' buffers: the server is mid-reply when the reader vanishes."""
BLOCKED_ROUNDS: Final = 10
"""Rounds of "a waiter vanishes, a push follows at once": the race it tests is a narrow one."""
UNREAD_MESSAGES: Final = 300
"""About 300 KB of pushes a subscriber never reads: past the socket buffers, far below the
server's pub/sub buffer limit (32 MiB), so the server has not cut it off before it vanishes."""
FULL_WRITES: Final = 2000
"""Bound on writes into a full disk before one must be refused (a page of AOF is 4 KiB)."""
VALUE: Final = "v" * 500
"""The value of the disk tests' keys: a full AOF page holds only a few of them."""
CHECKER_DATA: Final[dict[str, Any]] = {"checker:text": "mine", "checker:int": 42,
                                       "checker:bytes": b"\x00\xff"}
BULK_KEYS: Final = 10_000
"""Keys of VALUE for the snapshot that must not fit: about 5 MiB."""
SIGTERM_KEYS: Final = 300_000
"""Enough that a BGSAVE still runs when the SIGTERM arrives (test_persistence.py uses as many)."""
SHUTDOWN_GRACE_S: Final = 2.0
"""--shutdown-grace for the SIGTERM test (the default is 5 s)."""
SHUTDOWN_SLACK_S: Final = 3.0
"""Beyond the grace: the AOF's final fsync and the interpreter's exit, on a busy machine."""

HOWS: Final = ["close", "reset"]
"""How a peer vanishes: ``close`` sends FIN, ``reset`` sends RST (SO_LINGER on, timeout 0)."""


def wait_until(predicate: Callable[[], object], what: str, timeout_s: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s} s"
        time.sleep(0.01)


# --- client disconnects ------------------------------------------------------------------------


class Peer(RawConnection):
    """An authenticated raw connection that pipelines, reads by count, and can vanish."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(server)
        self.handshake()
        self.backlog: list[tuple[int, object]] = []

    def send(self, *commands: list[object]) -> None:
        self.sock.sendall(b"".join(encode_frame(command) for command in commands))

    def read(self, count: int, timeout_s: float = SETTLE_S) -> list[tuple[int, object]]:
        deadline = time.monotonic() + timeout_s
        while len(self.backlog) < count:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            data = self.sock.recv(1 << 20)
            assert data, f"the server closed the connection; read so far: {self.backlog}"
            self.backlog += [decode_message(item) for item in self.decoder.feed(data)]
        found, self.backlog = self.backlog[:count], self.backlog[count:]
        return found

    def request(self, *argv: object) -> object:
        self.send(list(argv))
        [(kind, payload)] = self.read(1)
        assert kind == REPLY, (argv, payload)
        return payload

    def vanish(self, how: str) -> None:
        """Go away: ``close`` sends FIN; ``reset`` sends RST (linger on, timeout 0)."""
        if how == "reset":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


@pytest.fixture(scope="module")
def checker(module_kv_server: ServerProcess) -> Iterator[Client]:
    """A client of the module's server that owns CHECKER_DATA for the whole module."""
    with module_kv_server.client(name="checker", timeout=SETTLE_S) as kv:
        kv.mset(CHECKER_DATA)
        kv.rpush("checker:list", 1, 2, 3)
        yield kv


def clients_info(kv: Client) -> dict[str, Any]:
    return kv.info("clients")["clients"]


@pytest.fixture
def baseline(checker: Client) -> dict[str, Any]:
    """INFO clients before the test, once earlier tests' connections are gone."""
    wait_until(lambda: clients_info(checker)["connected_clients"] == 1, "earlier connections closing")
    return clients_info(checker)


def still_serving(server: ServerProcess, checker: Client, baseline: dict[str, Any]) -> None:
    """The vanished connection is gone, nothing of it lingers, and everyone else is served."""
    wait_until(lambda: clients_info(checker)["connected_clients"] == baseline["connected_clients"],
               "the vanished connection's removal")
    info = clients_info(checker)
    for field in ("blocked_clients", "watching_clients", "pubsub_clients"):
        assert info[field] == baseline[field], (field, info)
    assert checker.mget(*CHECKER_DATA) == list(CHECKER_DATA.values())
    assert checker.lrange("checker:list", 0, -1) == [1, 2, 3]
    with server.client(name="newcomer", timeout=SETTLE_S) as kv:
        assert kv.ping() == "PONG"
        kv.set("newcomer", 1)
        assert kv.get("newcomer") == 1
        kv.delete("newcomer")


def aof_commands(server: ServerProcess) -> list[list[Any]]:
    """The commands of kv.aof's complete records (the module's server never rotates it)."""
    reader = AofReader()
    records = reader.feed((server.data_dir / "kv.aof").read_bytes())
    reader.finish(allow_torn=True)
    return [record.argv for record in records]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("cut", ["length prefix", "body"])
def test_a_client_vanishing_mid_frame(module_kv_server: ServerProcess, checker: Client,
                                      baseline: dict[str, Any], how: str, cut: str) -> None:
    key = f"mid-frame:{how}:{cut}"
    frame = encode_frame(["SET", key, b"x" * 4000])
    peer = Peer(module_kv_server)
    peer.sock.sendall(frame[:2] if cut == "length prefix" else frame[:len(frame) // 2])
    time.sleep(0.05)  # let the server read the half frame before the peer goes
    peer.vanish(how)
    still_serving(module_kv_server, checker, baseline)
    assert checker.exists(key) == 0


@pytest.mark.parametrize("how", HOWS)
def test_a_client_vanishing_mid_pipeline(module_kv_server: ServerProcess, checker: Client,
                                         baseline: dict[str, Any], how: str) -> None:
    """The pipelined writes that ran are a prefix of those sent, and each is in the AOF."""
    key = f"pipeline:{how}"
    peer = Peer(module_kv_server)
    peer.send(*[["RPUSH", key, index] for index in range(PIPELINE_COMMANDS)])
    peer.vanish(how)  # no reply read
    still_serving(module_kv_server, checker, baseline)
    applied = checker.lrange(key, 0, -1)
    assert applied == list(range(len(applied))), "the writes that ran are not a prefix, in order"

    def logged() -> int:
        return sum(1 for argv in aof_commands(module_kv_server) if argv[:2] == ["RPUSH", key])

    wait_until(lambda: logged() == len(applied), f"the AOF holding the {len(applied)} pushes")


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("ending", ["queued", "exec cut mid-frame"])
def test_a_client_vanishing_mid_multi(module_kv_server: ServerProcess, checker: Client,
                                      baseline: dict[str, Any], how: str, ending: str) -> None:
    """Nothing of the transaction runs or reaches the AOF, and its WATCH is released."""
    prefix = f"multi:{how}:{ending}"
    checker.set(f"{prefix}:watched", "before")
    peer = Peer(module_kv_server)
    assert peer.request("WATCH", f"{prefix}:watched") == "OK"
    assert clients_info(checker)["watching_clients"] == baseline["watching_clients"] + 1
    peer.send(["MULTI"], ["SET", f"{prefix}:a", 1], ["RPUSH", f"{prefix}:list", "x"],
              ["SET", f"{prefix}:watched", "changed"])
    assert peer.read(4) == [(REPLY, "OK")] + [(REPLY, "QUEUED")] * 3
    if ending == "exec cut mid-frame":
        peer.sock.sendall(encode_frame(["EXEC"])[:3])
        time.sleep(0.05)
    peer.vanish(how)
    still_serving(module_kv_server, checker, baseline)  # watching_clients back at its baseline
    assert checker.exists(f"{prefix}:a", f"{prefix}:list") == 0
    assert checker.get(f"{prefix}:watched") == "before"
    checker.set(f"{prefix}:watched", "touched by the checker")  # a dead watch must not break this
    assert not [argv for argv in aof_commands(module_kv_server)
                if argv[0] == "MULTI" and any(f"{prefix}:a" in command for command in argv[1:])]


@pytest.mark.parametrize("how", HOWS)
def test_a_client_vanishing_while_blocked(module_kv_server: ServerProcess, checker: Client,
                                          baseline: dict[str, Any], how: str) -> None:
    """A push right after a blocked client vanished goes to the next waiter, or stays in
    the list: never to the dead connection (test_blocking.py covers FIN without a second
    waiter; this adds RST and a waiter behind the one that vanishes)."""
    key = f"blocked:{how}"
    for round_ in range(BLOCKED_ROUNDS):
        first, second = Peer(module_kv_server), Peer(module_kv_server)
        first.send(["BLPOP", key, 0])
        wait_until(lambda: clients_info(checker)["blocked_clients"] == 1, "the first client blocking")
        second.send(["BLPOP", key, 0])
        wait_until(lambda: clients_info(checker)["blocked_clients"] == 2, "the second client blocking")
        first.vanish(how)
        checker.rpush(key, f"{round_}:for the second")  # at once: the hang-up may be unseen yet
        assert second.read(1) == [(REPLY, [key, f"{round_}:for the second"])], f"round {round_}"
        second.send(["BLPOP", key, 0])
        wait_until(lambda: clients_info(checker)["blocked_clients"] == 1, "the second client blocking again")
        second.vanish(how)
        checker.rpush(key, f"{round_}:kept")
        wait_until(lambda: clients_info(checker)["blocked_clients"] == 0, "the waiters' removal")
        assert checker.lrange(key, 0, -1) == [f"{round_}:kept"], f"round {round_}: the element was lost"
        checker.delete(key)
    still_serving(module_kv_server, checker, baseline)  # blocked_clients back at its baseline


@pytest.mark.parametrize("how", HOWS)
def test_a_subscriber_vanishing_with_unread_messages(module_kv_server: ServerProcess, checker: Client,
                                                     baseline: dict[str, Any], how: str) -> None:
    channel = f"sub:{how}"
    peer = Peer(module_kv_server)
    assert peer.request("SUBSCRIBE", channel) == 1
    assert peer.request("PSUBSCRIBE", f"{channel}.*") == 2
    assert checker.execute("PUBSUB", "NUMSUB", channel) == {channel: 1}
    for index in range(UNREAD_MESSAGES):  # never read: they wait in the sockets' buffers
        assert checker.publish(channel, [index, "m" * 1000]) == 1
    peer.vanish(how)
    still_serving(module_kv_server, checker, baseline)  # pubsub_clients back at its baseline
    assert checker.execute("PUBSUB", "NUMSUB", channel) == {channel: 0}
    assert checker.execute("PUBSUB", "NUMPAT") == 0
    assert checker.publish(channel, "anyone?") == 0
    assert checker.publish(f"{channel}.x", "anyone?") == 0


@pytest.mark.parametrize("how", HOWS)
def test_a_client_vanishing_with_a_big_reply_half_read(module_kv_server: ServerProcess, checker: Client,
                                                       baseline: dict[str, Any], how: str) -> None:
    key = f"big:{how}"
    checker.set(key, b"\x01" * BIG_REPLY_BYTES)
    peer = Peer(module_kv_server)
    peer.send(["GET", key], ["GET", key], ["PING"])
    received = 0
    deadline = time.monotonic() + SETTLE_S
    while received < BIG_REPLY_BYTES // 2 and time.monotonic() < deadline:
        chunk = peer.sock.recv(65536)
        assert chunk, "the server closed the connection"
        received += len(chunk)
    assert received >= BIG_REPLY_BYTES // 2
    peer.vanish(how)
    still_serving(module_kv_server, checker, baseline)
    assert checker.strlen(key) == BIG_REPLY_BYTES
    checker.delete(key)


# --- the data directory: small filesystems and read-only mounts --------------------------------


def run(*argv: str) -> str | None:
    """Run a command; None on success, else why it failed."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"{argv[0]}: {exc}"
    if done.returncode == 0:
        return None
    return " ".join(done.stderr.split()) or f"exit status {done.returncode}"


def unmount(where: Path) -> None:
    if run("umount", str(where)) is not None:  # still busy: detach now, free when unused
        assert run("umount", "-l", str(where)) is None, f"cannot unmount {where}"


def kill_servers_since(count: int) -> None:
    """Kill the servers started after the first ``count``: their files must be closed before an
    unmount (conftest.py would kill them only after this test's own clean-up)."""
    for proc in STARTED[count:]:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def small_filesystem(where: Path, size_bytes: int) -> Iterator[str]:
    """A filesystem of ``size_bytes`` mounted at ``where`` for the block; yields its kind.

    tmpfs first, then ext4 in an image file on a loop device; the test is skipped, with
    both errors, when neither may be mounted here.
    """
    where.mkdir()
    started = len(STARTED)
    image = where.with_name(where.name + ".img")
    kind = "tmpfs"
    tmpfs_error = run("mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "kv-faults",
                      str(where))
    if tmpfs_error is not None:
        kind = "ext4 on a loop device"
        with image.open("wb") as out:
            out.truncate(size_bytes)
        loop_error = (run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
                      or run("mount", "-o", "loop", str(image), str(where)))
        if loop_error is not None:
            image.unlink()
            pytest.skip(f"no small filesystem can be mounted here: tmpfs: {tmpfs_error}; "
                        f"loop device: {loop_error}")
    try:
        yield kind
    finally:
        kill_servers_since(started)
        unmount(where)
        image.unlink(missing_ok=True)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def fill(ballast: Path, leave_bytes: int = 0) -> None:
    """Grow ``ballast`` until its filesystem has at most ``leave_bytes`` free (0: full)."""
    with ballast.open("ab", buffering=0) as out:
        for _ in range(4096):  # 1 MiB steps, then smaller: bounded by any filesystem here
            wanted = free_bytes(ballast.parent) - leave_bytes
            if wanted <= 0:
                return
            try:
                out.write(bytes(min(wanted, MIB)))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return
    raise AssertionError(f"{ballast} did not fill its filesystem")


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[str]:
    """``directory`` read-only for the block; yields the error message to expect.

    As root: a read-only bind mount over it (see the module docstring for why not a
    remount, and why not chmod). Otherwise: ``chmod 0500``.
    """
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield os.strerror(errno.EACCES)
        finally:
            directory.chmod(0o700)
        return
    error = run("mount", "--bind", str(directory), str(directory))
    if error is not None:
        pytest.skip(f"as root, chmod cannot make a directory read-only (CAP_DAC_OVERRIDE), and a "
                    f"bind mount was refused: {error}")
    try:
        error = run("mount", "-o", "remount,bind,ro", str(directory))
        if error is not None:
            pytest.skip(f"a bind mount cannot be made read-only here: {error}")
        with pytest.raises(OSError) as probe:
            (directory / "probe").touch()
        assert probe.value.errno == errno.EROFS, probe.value
        yield os.strerror(errno.EROFS)
    finally:
        unmount(directory)


def write_keys(kv: Client, prefix: str, count: int, acknowledged: dict[str, Any]) -> None:
    """SET ``count`` keys; each one answered goes into ``acknowledged``."""
    for index in range(count):
        kv.set(f"{prefix}:{index}", [prefix, index])
        acknowledged[f"{prefix}:{index}"] = [prefix, index]


def wait_for_bgsave(kv: Client, server: ServerProcess) -> dict[str, Any]:
    """INFO persistence once no background save runs; the server must outlive it."""
    deadline = time.monotonic() + 60
    while True:
        assert server.proc.poll() is None, (
            f"the server exited with status {server.proc.returncode}:\n{server.log()}")
        with contextlib.suppress(KvError):  # a dead server: the check above says why
            info = kv.info("persistence")["persistence"]
            if not info["bgsave_in_progress"]:
                return info
        assert time.monotonic() < deadline, "BGSAVE did not finish within 60 s"
        time.sleep(0.02)


def wait_for_new_segment(kv: Client, data: Path) -> None:
    """After a SAVE, until the AOF flusher has started kv.aof at the save's position and
    deleted the segment before it. SAVE answers before that, and a disk filled or made
    read-only in between would fail the segment change instead of what the test meant."""
    position = kv.info("persistence")["persistence"]["aof_position"]

    def done() -> bool:
        try:
            with (data / "kv.aof").open("rb") as aof:
                header = aof.readline()
        except FileNotFoundError:  # renamed to kv.aof.1, its successor not yet in place
            return False
        return header == f"kv-aof 1 {position}\n".encode() and not list(data.glob("kv.aof.*"))

    wait_until(done, "the AOF's new segment after SAVE")


def wait_for_writes(kv: Client, key: str) -> None:
    """Retry one write until it is accepted (bounded by RECOVERY_S)."""
    deadline = time.monotonic() + RECOVERY_S
    while True:
        try:
            kv.set(key, "accepted")
            return
        except MisconfError:
            assert time.monotonic() < deadline, f"writes still refused {RECOVERY_S} s after recovery"
            time.sleep(0.05)


def restart_and_check(server: ServerProcess, acknowledged: dict[str, Any],
                      absent: tuple[str, ...] = ()) -> None:
    """SIGKILL ``server`` (if it still runs), start a new one on its directory, and check
    that every acknowledged write is there and no refused one is."""
    if server.proc.poll() is None:
        server.stop(signal.SIGKILL)
    again = start_server(server.data_dir)
    with again.client(timeout=60) as kv:
        keys = list(acknowledged)
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            assert kv.mget(*batch) == [acknowledged[key] for key in batch]
        for key in absent:
            assert kv.exists(key) == 0, f"{key} was refused, yet it is there"
    assert again.stop() == 0, again.log()


def saved_server(data: Path, acknowledged: dict[str, Any]) -> tuple[ServerProcess, bytes, int]:
    """A server on ``data`` with 100 keys saved in kv.db (and its new AOF segment started);
    the snapshot's bytes and LASTSAVE."""
    server = start_server(data)
    with server.client(timeout=SETTLE_S) as kv:
        write_keys(kv, "before", 100, acknowledged)
        assert kv.save() is True
        wait_for_new_segment(kv, data)
        return server, (data / "kv.db").read_bytes(), kv.lastsave()


def test_disk_full_during_aof_append(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: dict[str, Any] = {}
    with small_filesystem(data, 4 * MIB) as kind:
        server, snapshot, saved_at = saved_server(data, acknowledged)
        with server.client(timeout=SETTLE_S) as kv:
            write_keys(kv, "after-save", 50, acknowledged)
            fill(data / "ballast")
            refusal = None
            for index in range(FULL_WRITES):  # the AOF's last page may still have room
                try:
                    kv.set(f"full:{index}", VALUE)
                except MisconfError as exc:
                    refusal = exc
                    break
                acknowledged[f"full:{index}"] = VALUE
            assert refusal is not None, f"{FULL_WRITES} writes fitted on a full {kind}"
            assert "not persisted" in str(refusal) and "No space left on device" in str(refusal)
            with pytest.raises(MisconfError, match=r"writes are refused: cannot write .*No space left"):
                kv.set("refused", 1)
            assert kv.get("before:0") == ["before", 0]  # reads keep working
            info = kv.info("persistence")["persistence"]
            assert info["aof_last_write_status"] == "err"
            assert "No space left on device" in info["aof_last_error"]

            # Saves meet the full disk too: refused, reported, the old snapshot untouched.
            with pytest.raises(KvError, match=r"save failed: .*kv\.db\.tmp.*No space left"):
                kv.save()
            kv.bgsave()
            info = wait_for_bgsave(kv, server)
            assert info["last_save_status"] == "err" and "exited with status" in info["last_save_error"]
            assert kv.lastsave() == saved_at
            assert (data / "kv.db").read_bytes() == snapshot
            assert not (data / "kv.db.tmp").exists()
            assert server.log().count("No space left on device") >= 3  # AOF, SAVE, the child

            # Space comes back: the retry (every second) accepts writes again by itself.
            (data / "ballast").unlink()
            wait_for_writes(kv, "recovered")
            acknowledged["recovered"] = "accepted"
            assert kv.info("persistence")["persistence"]["aof_last_write_status"] == "ok"
            write_keys(kv, "after-recovery", 50, acknowledged)
            kv.bgsave()
            info = wait_for_bgsave(kv, server)
            assert info["last_save_status"] == "ok", info
            write_keys(kv, "after-bgsave", 50, acknowledged)
        restart_and_check(server, acknowledged, absent=("refused",))


def load_bulk(kv: Client, acknowledged: dict[str, Any]) -> None:
    """BULK_KEYS keys of VALUE: about 5 MiB for a snapshot to write."""
    for start in range(0, BULK_KEYS, 1000):
        batch = {f"bulk:{index}": VALUE for index in range(start, start + 1000)}
        kv.mset(batch)
        acknowledged |= batch


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():
        pytest.skip("needs Linux's /proc/PID/task/PID/children to find the BGSAVE child")
    return [int(child) for child in path.read_text().split()]


def test_disk_full_during_bgsave(tmp_path: Path) -> None:
    """The disk fills while the child writes (it is held with SIGSTOP until then, so the
    AOF's new segment is in place first): the save fails and says so, the old snapshot
    stays, and the AOF, which still has room, keeps acknowledging writes."""
    data = tmp_path / "data"
    acknowledged: dict[str, Any] = {}
    with small_filesystem(data, 16 * MIB):
        server, snapshot, saved_at = saved_server(data, acknowledged)
        with server.client(timeout=60) as kv:
            load_bulk(kv, acknowledged)
            kv.bgsave()
            children = _children(server.proc.pid)
            assert len(children) == 1, "the BGSAVE child finished before the test could hold it"
            os.kill(children[0], signal.SIGSTOP)
            try:
                wait_until(lambda: kv.info("persistence")["persistence"]["aof_segments"] == 2,
                           "the AOF's new segment")
                write_keys(kv, "during", 20, acknowledged)
                fill(data / "ballast", leave_bytes=MIB)
            finally:
                os.kill(children[0], signal.SIGCONT)
            info = wait_for_bgsave(kv, server)
            assert info["last_save_status"] == "err" and "exited with status" in info["last_save_error"]
            assert info["aof_last_write_status"] == "ok", info
            assert "No space left on device" in server.log()
            assert kv.lastsave() == saved_at
            assert (data / "kv.db").read_bytes() == snapshot
            assert not (data / "kv.db.tmp").exists()
            write_keys(kv, "after-failure", 20, acknowledged)  # the AOF still has room
            (data / "ballast").unlink()
            kv.bgsave()
            info = wait_for_bgsave(kv, server)
            assert info["last_save_status"] == "ok" and kv.lastsave() >= saved_at, info
            wait_until(lambda: kv.info("persistence")["persistence"]["aof_segments"] == 1,
                       "the covered AOF segment's deletion")
            write_keys(kv, "after-bgsave", 20, acknowledged)
        restart_and_check(server, acknowledged)


def test_read_only_data_directory_during_aof_append_and_save(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: dict[str, Any] = {}
    server, snapshot, saved_at = saved_server(data, acknowledged)
    with server.client(timeout=SETTLE_S) as kv:
        with read_only(data) as reason:
            # Appends go to the kv.aof already open: nothing needs a new file yet.
            write_keys(kv, "read-only", 50, acknowledged)
            assert kv.info("persistence")["persistence"]["aof_last_write_status"] == "ok"
            # A save needs new files: kv.db.tmp cannot be created, and the AOF cannot start
            # its new segment, so writes are refused until a save succeeds.
            with pytest.raises(KvError, match=rf"save failed: .*kv\.db\.tmp.*{reason}"):
                kv.save()
            wait_until(lambda: kv.info("persistence")["persistence"]["aof_last_write_status"] == "err",
                       "the failed segment change")
            info = kv.info("persistence")["persistence"]
            assert info["last_save_status"] == "err" and reason in info["last_save_error"]
            assert f"cannot start a new segment in {data}: {reason}" == info["aof_last_error"]
            with pytest.raises(MisconfError, match=f"writes are refused: .*{reason}"):
                kv.set("refused", 1)
            assert kv.get("read-only:0") == ["read-only", 0]  # reads keep working
            assert kv.lastsave() == saved_at
            assert (data / "kv.db").read_bytes() == snapshot
            assert reason in server.log()
        # Writable again. A failed segment change is not retried (docs/persistence.md):
        # writes stay refused until a save succeeds.
        with pytest.raises(MisconfError):
            kv.set("refused", 1)
        assert kv.save() is True
        wait_for_writes(kv, "recovered")
        acknowledged["recovered"] = "accepted"
        write_keys(kv, "after", 50, acknowledged)
    restart_and_check(server, acknowledged, absent=("refused",))


def test_read_only_data_directory_during_bgsave(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: dict[str, Any] = {}
    server, snapshot, saved_at = saved_server(data, acknowledged)
    with server.client(timeout=SETTLE_S) as kv:
        with read_only(data) as reason:
            write_keys(kv, "read-only", 50, acknowledged)
            kv.bgsave()
            info = wait_for_bgsave(kv, server)
            assert info["last_save_status"] == "err" and "exited with status" in info["last_save_error"]
            assert f"cannot start a new segment in {data}: {reason}" == info["aof_last_error"]
            with pytest.raises(MisconfError, match=f"writes are refused: .*{reason}"):
                kv.set("refused", 1)
            assert kv.get("read-only:0") == ["read-only", 0]
            assert kv.lastsave() == saved_at
            assert (data / "kv.db").read_bytes() == snapshot
            assert "kv.db.tmp failed" in server.log() and reason in server.log()
        kv.bgsave()
        assert wait_for_bgsave(kv, server)["last_save_status"] == "ok"
        wait_for_writes(kv, "recovered")
        acknowledged["recovered"] = "accepted"
        write_keys(kv, "after", 50, acknowledged)
    restart_and_check(server, acknowledged, absent=("refused",))


def test_a_failed_save_gives_back_the_space_its_temporary_file_took(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: dict[str, Any] = {}
    with small_filesystem(data, 16 * MIB):
        server, snapshot, _ = saved_server(data, acknowledged)
        with server.client(timeout=SETTLE_S) as kv:
            load_bulk(kv, acknowledged)
            fill(data / "ballast", leave_bytes=MIB)
            with pytest.raises(KvError, match=r"save failed: .*kv\.db\.tmp.*No space left"):
                kv.save()
            assert (data / "kv.db").read_bytes() == snapshot
            time.sleep(0.2)  # the flusher's segment change, which SAVE asked for
            write_keys(kv, "after-failure", 20, acknowledged)  # the AOF still has room
            assert not (data / "kv.db.tmp").exists(), "the failed SAVE left kv.db.tmp behind"
        (data / "ballast").unlink()  # start-up saves a snapshot after replaying the AOF
        restart_and_check(server, acknowledged)


def test_start_up_on_a_read_only_data_directory_fails_with_a_clear_message(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    with server.client() as kv:
        kv.set("kept", 1)
    assert server.stop() == 0
    with read_only(data) as reason:
        command = [sys.executable, "-m", "kv_server", "--port", "0", "--dir", str(data),
                   "--pass", PASSWORD]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith("kv-server: ") and reason in done.stderr, done.stderr
        assert str(data) in done.stderr and "Traceback" not in done.stderr, done.stderr
    server = start_server(data)
    with server.client() as kv:
        assert kv.get("kept") == 1
    assert server.stop() == 0


def test_sigterm_during_a_large_bgsave_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    acknowledged: dict[str, Any] = {}
    server = start_server(data, "--shutdown-grace", str(SHUTDOWN_GRACE_S))
    with server.client(timeout=60) as kv:
        for start in range(0, SIGTERM_KEYS, 10_000):
            batch = {f"key:{index:012}": b"abc" for index in range(start, start + 10_000)}
            kv.mset(batch)
            acknowledged |= batch
        kv.bgsave()
        write_keys(kv, "during", 100, acknowledged)  # into the segment the save does not cover
        children = _children(server.proc.pid)
        assert children, "the BGSAVE child finished before the SIGTERM"
        started = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0, server.log()  # with this client still connected
    took = time.monotonic() - started
    assert took < SHUTDOWN_GRACE_S + SHUTDOWN_SLACK_S, f"shutdown took {took:.1f} s"
    assert "background save abandoned" in server.log()
    assert not [child for child in children if Path(f"/proc/{child}").exists()]
    left = sorted(path.name for path in data.iterdir())
    assert not [name for name in left if name.endswith(".tmp")], left
    restart_and_check(server, acknowledged)
    assert not [path.name for path in data.iterdir() if path.name.startswith("kv.aof.")]


@pytest.fixture(autouse=True)
def _no_leftover_mounts(tmp_path: Path) -> Iterator[None]:
    """A mount left behind by a failed test would keep pytest from deleting tmp_path."""
    yield
    mounts = Path("/proc/self/mounts")
    if mounts.exists() and str(tmp_path) in mounts.read_text():
        for line in reversed(mounts.read_text().splitlines()):
            where = line.split()[1]
            if where.startswith(str(tmp_path)):
                run("umount", "-l", where)
        shutil.rmtree(tmp_path, ignore_errors=True)
