"""MULTI/EXEC/DISCARD/WATCH against a real server, with several connections and processes.

What must hold (``_transactions.py``, docs/commands.md): queued commands answer
QUEUED and EXEC answers one envelope each, a run-time error in place; a command
refused while queueing makes EXEC answer EXECABORT and run nothing; EXEC runs with no
other client's command in between; a watched key changed by anyone, in any way
(write, DEL, FLUSHALL, expiry), makes EXEC answer null; and the AOF holds a
transaction as one record, so a torn one is dropped whole.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from integration_helpers import (
    Connect,
    PushConnection,
    ServerProcess,
    Worker,
    aof_commands,
    client_entry,
    start_server,
    wait_until,
)
from kv_protocol.errors import ErrorCode
from kv_protocol.messages import ERROR, REPLY

COUNTER_WORKERS = 4
COUNTER_ATTEMPTS = 300
"""Per worker: enough rounds of WATCH/GET/MULTI/SET/EXEC to collide often on 2 cores."""
ATOMICITY_S = 1.5
"""How long the transaction writer and the readers of the atomicity test run."""

def exec_ok(conn: PushConnection) -> list[object]:
    """EXEC's list of replies, every one a success."""
    envelopes = conn.request("EXEC")
    assert isinstance(envelopes, list), envelopes
    assert all(envelope[0] == REPLY for envelope in envelopes), envelopes
    return [envelope[1] for envelope in envelopes]


# --- queueing and EXEC's envelopes ---------------------------------------------------------


def test_queued_commands_answer_queued_and_exec_answers_an_envelope_each(connect: Connect) -> None:
    kv, other = connect(), connect()
    kv_id = kv.request("CLIENT", "ID")
    kv.request("SET", "text", "abc")
    assert kv.request("MULTI") == "OK"
    kv.send(["SET", "n", 1], ["INCR", "n"], ["LPUSH", "text", "x"], ["INCRBY", "n", 10],
            ["GET", "n"], ["RPUSH", "list", b"\x00", 1.5, None], ["LRANGE", "list", 0, -1],
            ["CLIENT", "ID"])
    assert kv.read(8) == [(REPLY, "QUEUED")] * 8
    assert client_entry(other, kv_id)["multi"] == 8  # type: ignore[index]
    # Nothing ran yet: another client sees none of it.
    assert other.request("GET", "n") is None
    assert other.request("EXISTS", "list") == 0
    envelopes = kv.request("EXEC")
    assert isinstance(envelopes, list) and len(envelopes) == 8, envelopes
    assert envelopes[:2] == [[0, "OK"], [0, 2]]
    code, message = envelopes[2][1:]
    assert envelopes[2][0] == ERROR and code == ErrorCode.WRONGTYPE, envelopes[2]
    assert "wrong kind" in message
    # The run-time error did not stop the rest.
    assert envelopes[3:] == [[0, 12], [0, 12], [0, 3], [0, [b"\x00", 1.5, None]], [0, kv_id]]
    assert other.request("GET", "n") == 12
    assert other.request("GET", "text") == "abc"
    assert client_entry(other, kv_id)["multi"] == -1  # type: ignore[index]
    # Out of MULTI again: commands run at once.
    assert kv.request("INCR", "n") == 13


def test_an_empty_transaction_and_a_read_only_one_answer_lists(connect: Connect) -> None:
    kv = connect()
    kv.request("MULTI")
    assert kv.request("EXEC") == []
    kv.request("SET", "k", {"a": [1, 2]})
    kv.request("MULTI")
    kv.request("GET", "k")
    kv.request("EXISTS", "k", "missing")
    assert exec_ok(kv) == [{"a": [1, 2]}, 1]


@pytest.mark.parametrize(("refused", "why"), [
    (["GET"], "wrong number of arguments"),
    (["GET", "a", "b"], "wrong number of arguments"),
    (["NO-SUCH-COMMAND", "x"], "unknown command"),
    (["SUBSCRIBE", "channel"], "not allowed inside MULTI"),
    (["PSUBSCRIBE", "chan*"], "not allowed inside MULTI"),
    (["INCRBY", "counter", "ten"], ""),
    (["SAVE"], "not allowed inside MULTI"),
    (["BGSAVE"], "not allowed inside MULTI"),
])
def test_a_command_refused_while_queueing_makes_exec_abort_and_run_nothing(
        connect: Connect, refused: list[object], why: str) -> None:
    kv, other = connect(), connect()
    kv.request("SET", "counter", 1)
    kv.request("MULTI")
    assert kv.request("INCR", "counter") == "QUEUED"
    error = kv.error(*refused)
    assert why in str(error), error
    # Later commands are still checked and queued; EXEC then refuses the lot.
    assert kv.request("SET", "after", "x") == "QUEUED"
    error = kv.error("EXEC")
    assert error.code == ErrorCode.EXECABORT, error
    assert other.request("MGET", "counter", "after") == [1, None]
    # The transaction is over: no MULTI state, no subscription, commands run at once.
    assert kv.request("INCR", "counter") == 2
    assert kv.request("PUBSUB", "NUMSUB", "channel") == {"channel": 0}
    assert client_entry(other, kv.request("CLIENT", "ID"))["multi"] == -1  # type: ignore[index]


def test_misplaced_control_commands_are_errors(connect: Connect) -> None:
    kv, other = connect(), connect()
    kv_id = kv.request("CLIENT", "ID")
    assert "EXEC without MULTI" in str(kv.error("EXEC"))
    assert "DISCARD without MULTI" in str(kv.error("DISCARD"))
    kv.request("MULTI")
    kv.request("SET", "k", 1)
    assert "nested" in str(kv.error("MULTI"))
    assert "WATCH inside MULTI" in str(kv.error("WATCH", "k"))
    assert client_entry(other, kv_id)["watch"] == 0  # type: ignore[index]
    assert kv.request("DISCARD") == "OK"
    assert other.request("EXISTS", "k") == 0
    assert client_entry(other, kv_id)["multi"] == -1  # type: ignore[index]
    # A nested MULTI leaves the transaction as it was (documented): EXEC still runs it.
    kv.request("MULTI")
    kv.request("SET", "k", 1)
    assert "nested" in str(kv.error("MULTI"))
    kv.request("INCR", "k")
    assert exec_ok(kv) == ["OK", 2]
    assert "EXEC without MULTI" in str(kv.error("EXEC"))
    assert "DISCARD without MULTI" in str(kv.error("DISCARD"))


# --- WATCH ----------------------------------------------------------------------------------

_COUNTER = '''
import random
rng = random.Random(ARGS["seed"])
kv = Raw()
emit("ready")
successes = aborts = 0
for _ in range(ARGS["attempts"]):
    if time.monotonic() > DEADLINE:
        break
    kv.call("WATCH", "counter")
    value = kv.call("GET", "counter") or 0
    if rng.random() < 0.3:
        time.sleep(0.0005)  # widen the window between the read and EXEC
    kv.call("MULTI")
    kv.call("SET", "counter", value + 1)
    kv.call("SET", "last", ARGS["seed"])
    result = kv.call("EXEC")
    if result is None:
        aborts += 1
    else:
        assert result == [[0, "OK"], [0, "OK"]], result
        successes += 1
emit("done", [successes, aborts])
'''


def test_a_watched_counter_ends_at_the_number_of_successful_execs(
        server: ServerProcess, connect: Connect) -> None:
    workers = [Worker(server, _COUNTER, {"seed": seed, "attempts": COUNTER_ATTEMPTS})
               for seed in range(COUNTER_WORKERS)]
    for worker in workers:
        worker.expect("ready")
    results = [worker.expect("done", timeout_s=40) for worker in workers]
    for worker in workers:
        worker.finish()
    successes = sum(done for done, _ in results)
    aborts = sum(aborted for _, aborted in results)
    assert successes + aborts == COUNTER_WORKERS * COUNTER_ATTEMPTS
    assert connect().request("GET", "counter") == successes
    assert aborts > 0, "the workers never collided: the test proves nothing"
    assert successes >= COUNTER_ATTEMPTS, results  # someone always wins a round


_TRANSFER = '''
kv = Raw()
emit("ready")
rounds = 0
end = time.monotonic() + ARGS["seconds"]
while time.monotonic() < end and time.monotonic() < DEADLINE:
    pads = 500 if rounds % 5 == 0 else 20  # now and then a big one
    kv.send(["MULTI"], ["INCR", "a"], *[["SET", f"pad{i}", i] for i in range(pads)],
            ["INCR", "b"], ["EXEC"])
    for index in range(pads + 3):
        assert kv.next() == (REPLY, "QUEUED" if index else "OK")
    kind, replies = kv.next()
    assert kind == REPLY and len(replies) == pads + 2, replies
    rounds += 1
emit("done", rounds)
'''

_READ_PAIR = '''
kv = Raw()
emit("ready")
reads = differ = 0
end = time.monotonic() + ARGS["seconds"]
while time.monotonic() < end and time.monotonic() < DEADLINE:
    if reads % 2:
        a, b = kv.call("MGET", "a", "b")
    else:
        kv.send(["MULTI"], ["GET", "a"], ["GET", "b"], ["EXEC"])
        for _ in range(3):
            kv.next()
        kind, envelopes = kv.next()
        (_, a), (_, b) = envelopes
    reads += 1
    if a != b:
        differ += 1
emit("done", [reads, differ])
'''


def test_other_clients_never_see_half_a_transaction(server: ServerProcess,
                                                    connect: Connect) -> None:
    writers = [Worker(server, _TRANSFER, {"seconds": ATOMICITY_S}) for _ in range(2)]
    readers = [Worker(server, _READ_PAIR, {"seconds": ATOMICITY_S}) for _ in range(2)]
    for worker in writers + readers:
        worker.expect("ready")
    rounds = sum(worker.expect("done") for worker in writers)
    read = [worker.expect("done") for worker in readers]
    for worker in writers + readers:
        worker.finish()
    assert [differ for _, differ in read] == [0, 0], read
    assert all(reads > 50 for reads, _ in read), read
    assert rounds > 50
    kv = connect()
    assert kv.request("MGET", "a", "b") == [rounds, rounds]


def _watch_then_exec(kv: PushConnection, key: str, change: Callable[[], object]) -> object:
    """WATCH ``key``, let ``change`` run, then MULTI / SET key / EXEC: EXEC's answer."""
    assert kv.request("WATCH", key) == "OK"
    change()
    kv.request("MULTI")
    kv.request("SET", key, "from the transaction")
    kv.request("SET", "side-effect", 1)
    return kv.request("EXEC")


@pytest.mark.parametrize("change", [
    "write by another client", "DEL by another client", "FLUSHALL by another client",
    "expiry", "write by the same client", "created by another client",
    "renamed away", "list push", "EXPIRE by another client", "transaction by another client",
    "pop by another client",
])
def test_a_changed_watched_key_makes_exec_answer_null(connect: Connect, change: str) -> None:
    kv, other = connect(), connect()
    key = "watched"
    if change != "created by another client":
        other.request("SET", key, "original")
    if change in ("list push", "pop by another client"):
        other.request("DEL", key)
        other.request("RPUSH", key, 1)
    if change == "expiry":
        other.request("PEXPIRE", key, 60)
    actions: dict[str, Callable[[], object]] = {
        "write by another client": lambda: other.request("SET", key, "changed"),
        "DEL by another client": lambda: other.request("DEL", key),
        "FLUSHALL by another client": lambda: other.request("FLUSHALL"),
        "expiry": lambda: time.sleep(0.25),  # and no one touches the key
        "write by the same client": lambda: kv.request("APPEND", key, "!"),
        "created by another client": lambda: other.request("SET", key, "new"),
        "renamed away": lambda: other.request("RENAME", key, "elsewhere"),
        "list push": lambda: other.request("RPUSH", key, 2),
        "EXPIRE by another client": lambda: other.request("EXPIRE", key, 100),
        "transaction by another client": lambda: (
            other.request("MULTI"), other.request("SET", key, "tx"), exec_ok(other)),
        "pop by another client": lambda: other.request("BLPOP", key, 1),
    }
    assert _watch_then_exec(kv, key, actions[change]) is None
    assert other.request("EXISTS", "side-effect") == 0
    # The watch ended with EXEC: the same transaction now succeeds.
    kv.request("MULTI")
    kv.request("SET", key, "second try")
    assert exec_ok(kv) == ["OK"]
    assert other.request("GET", key) == "second try"


@pytest.mark.parametrize("change", ["write to another key", "read of the key", "no-op DEL",
                                    "failed write"])
def test_an_unchanged_watched_key_lets_exec_run(connect: Connect, change: str) -> None:
    kv, other = connect(), connect()
    other.request("SET", "watched", "original")
    other.request("PEXPIRE", "watched", 60_000)
    actions: dict[str, Callable[[], object]] = {
        "write to another key": lambda: other.request("SET", "unrelated", 1),
        "read of the key": lambda: other.request("GET", "watched"),
        "no-op DEL": lambda: other.request("DEL", "missing"),
        "failed write": lambda: other.error("LPUSH", "watched", 1),
    }
    assert _watch_then_exec(kv, "watched", actions[change]) == [[0, "OK"], [0, "OK"]]


@pytest.mark.parametrize("release", ["UNWATCH", "DISCARD", "EXEC"])
def test_unwatch_discard_and_exec_release_the_watch(connect: Connect, release: str) -> None:
    kv, other = connect(), connect()
    kv_id = kv.request("CLIENT", "ID")
    kv.request("WATCH", "a", "b", "a")
    assert client_entry(other, kv_id)["watch"] == 2  # type: ignore[index]
    if release == "UNWATCH":
        kv.request("UNWATCH")
    else:
        kv.request("MULTI")
        kv.request(release)
    assert client_entry(other, kv_id)["watch"] == 0  # type: ignore[index]
    assert other.request("INFO", "clients")["clients"]["watching_clients"] == 0  # type: ignore[index]
    other.request("SET", "a", "changed")
    kv.request("MULTI")
    kv.request("SET", "b", 1)
    assert exec_ok(kv) == ["OK"]


def test_a_disconnected_watcher_leaves_no_watch_behind(connect: Connect) -> None:
    admin = connect()
    for _ in range(5):
        kv = connect()
        kv.request("WATCH", *[f"key{i}" for i in range(50)])
        kv.close()

    def no_watchers() -> bool:
        info = admin.request("INFO", "clients")
        return info["clients"]["watching_clients"] == 0  # type: ignore[index,no-any-return]

    wait_until(no_watchers, what="the closed watchers leaving")
    admin.request("SET", "key1", 1)  # touching a key watched by the dead must not break


# --- the AOF holds a transaction as one record ----------------------------------------------


def test_exec_is_one_aof_record_and_survives_sigkill(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--appendfsync", "always")
    kv = PushConnection(server)
    kv.request("SET", "before", 0)
    kv.request("MULTI")
    kv.send(["SET", "a", 1], ["RPUSH", "list", "x", b"y", 3], ["INCR", "a"], ["GET", "a"],
            ["LPUSH", "a", "wrong type"], ["HSET", "hash", "f", 1.5], ["DEL", "missing"],
            ["PEXPIRE", "list", 600_000])
    assert [kind for kind, _ in kv.read(8)] == [REPLY] * 8
    envelopes = kv.request("EXEC")
    assert [envelope[0] for envelope in envelopes] == [0, 0, 0, 0, 1, 0, 0, 0]
    commands = aof_commands(server.data_dir)
    assert commands[0] == ["SET", "before", 0]
    assert len(commands) == 2, commands
    transaction = commands[1]
    assert transaction[0] == "MULTI"
    # Only what changed the keyspace, in order; PEXPIRE is made absolute (clock-free).
    names = [argv[0] for argv in transaction[1:]]
    assert names[:4] == ["SET", "RPUSH", "INCR", "HSET"], transaction
    assert transaction[1:4] == [["SET", "a", 1], ["RPUSH", "list", "x", b"y", 3], ["INCR", "a"]]
    assert len(names) == 5 and names[4] != "PEXPIRE", transaction  # an absolute form
    kv.close()
    server.stop(signal.SIGKILL)
    restarted = start_server(tmp_path / "data")
    kv = PushConnection(restarted)
    assert kv.request("MGET", "before", "a") == [0, 2]
    assert kv.request("LRANGE", "list", 0, -1) == ["x", b"y", 3]
    assert kv.request("HGET", "hash", "f") == 1.5
    assert 0 < kv.request("PTTL", "list") <= 600_000  # type: ignore[operator]
    kv.close()
    assert restarted.stop() == 0, restarted.log()


def test_a_transaction_that_changes_nothing_logs_nothing(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    kv = PushConnection(server)
    kv.request("SET", "k", "v")
    kv.request("MULTI")
    kv.request("GET", "k")
    kv.request("DEL", "missing")
    kv.request("LPUSH", "k", "wrong type")
    kv.request("EXEC")
    kv.request("WATCH", "k")
    kv.request("MULTI")
    kv.request("SET", "k", "aborted")
    other = PushConnection(server)
    other.request("SET", "k", "other")
    other.close()
    assert kv.request("EXEC") is None
    assert aof_commands(server.data_dir) == [["SET", "k", "v"], ["SET", "k", "other"]]
    kv.close()
    assert server.stop() == 0, server.log()


@pytest.mark.parametrize("cut", ["half", "all but the newline", "after the timestamp"])
def test_a_torn_transaction_record_is_dropped_whole(tmp_path: Path, cut: str) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    kv = PushConnection(server)
    kv.request("SET", "kept", "yes")
    kv.request("RPUSH", "list", 1)
    kv.request("MULTI")
    for command in (["SET", "t1", 1], ["RPUSH", "list", 2, 3], ["SET", "t2", "x" * 200],
                    ["DEL", "kept"]):
        kv.request(*command)
    assert len(kv.request("EXEC")) == 4  # type: ignore[arg-type]
    kv.close()
    server.stop(signal.SIGKILL)
    aof = data / "kv.aof"
    content = aof.read_bytes()
    last = content.rstrip(b"\n").rfind(b"\n") + 1
    assert b'["MULTI",' in content[last:], content[last:]
    keep = {"half": (len(content) - last) // 2, "all but the newline": len(content) - last - 1,
            "after the timestamp": content.index(b" ", last) - last + 1}[cut]
    aof.write_bytes(content[: last + keep])

    with pytest.raises(AssertionError, match="--aof-load-truncated") as refused:
        start_server(data)
    assert "incomplete" in str(refused.value)

    server = start_server(data, "--aof-load-truncated")
    kv = PushConnection(server)
    assert kv.request("GET", "kept") == "yes"
    assert kv.request("LRANGE", "list", 0, -1) == [1]
    assert kv.request("EXISTS", "t1", "t2") == 0
    assert "dropped a torn last record" in server.log()
    # The server goes on from the good records: a new write, a crash and a plain
    # restart (no flag) must find a clean file.
    kv.request("MULTI")
    kv.request("SET", "t1", "after")
    kv.request("RPUSH", "list", 4)
    exec_ok(kv)
    kv.close()
    server.stop(signal.SIGKILL)
    server = start_server(data)
    kv = PushConnection(server)
    assert kv.request("MGET", "kept", "t1", "t2") == ["yes", "after", None]
    assert kv.request("LRANGE", "list", 0, -1) == [1, 4]
    kv.close()
    assert server.stop() == 0, server.log()
