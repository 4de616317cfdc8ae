"""BLPOP/BRPOP/BLMOVE/BRPOPLPUSH/BLPOPRPUSH against a real server, across connections and processes.

What must hold (``_blocking.py``, docs/commands.md): a blocked client is served by
whatever gives its key a list (a push, a transaction, RENAME, COPY, a move from another
list), clients blocked on one key are served in the order they blocked, one element
each; a timeout answers null; inside MULTI nothing blocks; commands pipelined after a
blocking one run after it is answered, in order; the served pop reaches the AOF as
the non-blocking command; and a client that goes away while blocked (CLIENT KILL,
a closed socket, a killed process) leaves no trace, so no element is ever lost to it.
"""

from __future__ import annotations

import signal
import time
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
    wait_blocked,
    wait_until,
)
from kv_protocol.errors import ErrorCode
from kv_protocol.messages import ERROR, PUSH, REPLY, Push

FIFO_CLIENTS = 5
STRESS_CONSUMERS = 3
STRESS_ELEMENTS = 400
STRESS_S = 1.5
"""How long consumers with short timeouts race a producer in the conservation test."""
RACE_ROUNDS = 20
"""Rounds of "go away, then push at once" in the tests of that race (a round that loses
the race loses the element about half the time, so 20 make a miss near impossible)."""

def block(admin: PushConnection, conn: PushConnection, *argv: object) -> int:
    """Send a blocking command on ``conn`` and wait until the server shows it blocked."""
    conn_id = conn.request("CLIENT", "ID")
    assert isinstance(conn_id, int)
    conn.send(list(argv))
    wait_blocked(admin, conn_id)
    return conn_id


def blocked_clients(admin: PushConnection) -> tuple[int, int]:
    """INFO's blocked_clients and total_blocking_keys."""
    clients = admin.request("INFO", "clients")["clients"]  # type: ignore[index]
    return clients["blocked_clients"], clients["total_blocking_keys"]


# --- served by another client ----------------------------------------------------------------

SERVED = {
    "BLPOP": (["BLPOP", "missing", "q", 0], ["q", "a"], ["b"], ["z"]),
    "BRPOP": (["BRPOP", "q", 0], ["q", "b"], ["a"], ["z"]),
    "BLMOVE LEFT RIGHT": (["BLMOVE", "q", "dst", "LEFT", "RIGHT", 0], "a", ["b"], ["z", "a"]),
    "BLMOVE right left": (["BLMOVE", "q", "dst", "right", "left", 0], "b", ["a"], ["b", "z"]),
    "BRPOPLPUSH": (["BRPOPLPUSH", "q", "dst", 0], "b", ["a"], ["b", "z"]),
    "BLPOPRPUSH": (["BLPOPRPUSH", "q", "dst", 0.0], "a", ["b"], ["z", "a"]),
}
"""command, its reply once ``RPUSH q a b`` serves it, then q and dst (which held [z])."""


@pytest.mark.parametrize("name", SERVED)
def test_a_blocked_command_is_served_by_a_push_from_another_client(
        connect: Connect, name: str) -> None:
    command, reply, rest, destination = SERVED[name]
    admin, blocked, pusher = connect(), connect(), connect()
    admin.request("RPUSH", "dst", "z")
    blocked_id = block(admin, blocked, *command)
    entry = client_entry(admin, blocked_id)
    assert entry is not None and entry["blocked"] is True and entry["cmd"] == command[0].lower()
    assert blocked_clients(admin)[0] == 1
    assert blocked.quiet(0.1)
    assert pusher.request("RPUSH", "q", "a", "b") == 2  # the length it made, before serving
    assert blocked.read(1) == [(REPLY, reply)]
    assert admin.request("LRANGE", "q", 0, -1) == rest
    assert admin.request("LRANGE", "dst", 0, -1) == destination
    assert client_entry(admin, blocked_id)["blocked"] is False  # type: ignore[index]
    assert blocked_clients(admin) == (0, 0)
    assert blocked.request("PING") == "PONG"  # the connection goes on


def test_an_element_already_there_is_taken_at_once(connect: Connect) -> None:
    kv = connect()
    kv.request("RPUSH", "q", 1, 2, 3)
    kv.request("RPUSH", "other", "x")
    assert kv.request("BLPOP", "missing", "q", "other", 0) == ["q", 1]
    assert kv.request("BRPOP", "other", "q", 5) == ["other", "x"]
    assert kv.request("BLMOVE", "q", "q", "LEFT", "RIGHT", 0) == 2  # rotation
    assert kv.request("LRANGE", "q", 0, -1) == [3, 2]
    assert kv.request("EXISTS", "other") == 0  # popped empty, so deleted


def test_a_key_of_another_type_is_wrongtype_at_once(connect: Connect) -> None:
    kv = connect()
    kv.request("SET", "text", "not a list")
    for argv in (["BLPOP", "missing", "text", 0], ["BRPOP", "text", 0],
                 ["BLMOVE", "text", "dst", "LEFT", "LEFT", 0], ["BRPOPLPUSH", "text", "d", 0]):
        assert kv.error(*argv).code == ErrorCode.WRONGTYPE
    kv.request("RPUSH", "list", 1)
    assert kv.error("BRPOPLPUSH", "list", "text", 0).code == ErrorCode.WRONGTYPE
    assert kv.request("LRANGE", "list", 0, -1) == [1]  # nothing moved


# --- timeouts --------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "timeout_s"), [
    (["BLPOP", "q", 0.3], 0.3),
    (["BRPOP", "q", "r", 0.05], 0.05),
    (["BLMOVE", "q", "dst", "LEFT", "RIGHT", 0.2], 0.2),
    (["BRPOPLPUSH", "q", "dst", 1], 1.0),
    (["BLPOPRPUSH", "q", "dst", 0.1], 0.1),
])
def test_a_timeout_answers_null_after_about_that_long_and_leaves_nothing(
        connect: Connect, argv: list[object], timeout_s: float) -> None:
    admin, kv = connect(), connect()
    started = time.monotonic()
    assert kv.request(*argv, timeout_s=timeout_s + 10) is None
    elapsed = time.monotonic() - started
    assert timeout_s * 0.9 <= elapsed < timeout_s + 1.5, elapsed
    assert blocked_clients(admin) == (0, 0)
    admin.request("RPUSH", "q", "kept")
    assert admin.request("LRANGE", "q", 0, -1) == ["kept"]
    assert admin.request("EXISTS", "dst") == 0
    assert kv.request("PING") == "PONG"


def test_timeout_zero_waits_until_served(connect: Connect) -> None:
    admin, kv = connect(), connect()
    started = time.monotonic()
    block(admin, kv, "BLPOP", "q", 0)
    assert kv.quiet(1.2)
    admin.request("LPUSH", "q", "late")
    assert kv.read(1) == [(REPLY, ["q", "late"])]
    assert time.monotonic() - started >= 1.2


@pytest.mark.parametrize("timeout", [-1, -0.001, float("inf"), float("nan"), "1", None])
def test_a_bad_timeout_is_an_error_and_nothing_blocks(connect: Connect, timeout: object) -> None:
    admin, kv = connect(), connect()
    for argv in (["BLPOP", "q", timeout], ["BLMOVE", "q", "d", "LEFT", "LEFT", timeout],
                 ["BRPOPLPUSH", "q", "d", timeout]):
        error = kv.error(*argv)
        assert error.code in (ErrorCode.ERR, ErrorCode.ARGTYPE), error
    assert blocked_clients(admin) == (0, 0)
    assert kv.request("PING") == "PONG"


# --- who is served -----------------------------------------------------------------------------

_FIFO_WAITER = '''
kv = Raw()
emit("id", kv.call("CLIENT", "ID"))
kv.send(ARGS["command"])
kind, reply = kv.next()
assert kind == REPLY, reply
emit("served", reply)
'''

FIFO_PUSHES = {
    "one at a time": [["RPUSH", "fifo", f"e{index}"] for index in range(FIFO_CLIENTS)],
    "all at once": [["RPUSH", "fifo", *[f"e{index}" for index in range(FIFO_CLIENTS)]]],
    "all at once, LPUSH": [["LPUSH", "fifo", *[f"e{index}" for index in reversed(
        range(FIFO_CLIENTS))]]],
    "in a transaction": [["MULTI"], *[["RPUSH", "fifo", f"e{index}"]
                                      for index in range(FIFO_CLIENTS)], ["EXEC"]],
}


@pytest.mark.parametrize("how", FIFO_PUSHES)
def test_clients_blocked_on_one_key_are_served_in_the_order_they_blocked(
        server: ServerProcess, connect: Connect, how: str) -> None:
    admin = connect()
    waiters = []
    for index in range(FIFO_CLIENTS):  # each in its own process, blocked in a known order
        command = ["BLPOP", "fifo", 0] if index % 2 == 0 else ["BLPOP", f"own{index}", "fifo", 0]
        waiters.append(Worker(server, _FIFO_WAITER, {"command": command}))
        wait_blocked(admin, waiters[-1].expect("id"))
    for argv in FIFO_PUSHES[how]:
        admin.request(*argv)
    served = [worker.expect("served") for worker in waiters]
    assert served == [["fifo", f"e{index}"] for index in range(FIFO_CLIENTS)]
    for worker in waiters:
        worker.finish()
    assert admin.request("EXISTS", "fifo") == 0
    assert blocked_clients(admin) == (0, 0)


def test_a_client_blocked_on_several_keys_gets_the_first_that_receives_data(
        connect: Connect) -> None:
    admin, kv = connect(), connect()
    block(admin, kv, "BLPOP", "k1", "k2", "k3", 0)
    admin.request("RPUSH", "k3", "x")
    assert kv.read(1) == [(REPLY, ["k3", "x"])]
    # Two keys receive data in one transaction: the first to receive it serves.
    block(admin, kv, "BRPOP", "k1", "k2", "k3", 0)
    admin.request("MULTI")
    admin.request("RPUSH", "k2", "from k2")
    admin.request("RPUSH", "k1", "from k1")
    admin.request("EXEC")
    assert kv.read(1) == [(REPLY, ["k2", "from k2"])]
    assert admin.request("LRANGE", "k1", 0, -1) == ["from k1"]
    assert admin.request("EXISTS", "k2", "k3") == 0


def test_a_client_blocked_on_many_keys_holds_each_until_served(connect: Connect) -> None:
    admin, kv = connect(), connect()
    keys = [f"key{index}" for index in range(100)]
    block(admin, kv, "BRPOP", *keys, 0)
    assert blocked_clients(admin) == (1, 100)
    admin.request("RPUSH", "key99", "last", "key")
    assert kv.read(1) == [(REPLY, ["key99", "key"])]
    assert blocked_clients(admin) == (0, 0)


def test_a_waiter_that_timed_out_is_skipped_and_the_order_kept(connect: Connect) -> None:
    admin = connect()
    waiters = [connect() for _ in range(FIFO_CLIENTS)]
    for index, conn in enumerate(waiters):
        block(admin, conn, "BLPOP", "fifo", 0.2 if index == 2 else 0)
    assert waiters[2].read(1, timeout_s=5) == [(REPLY, None)]
    assert blocked_clients(admin) == (FIFO_CLIENTS - 1, 1)
    admin.request("RPUSH", "fifo", *[f"e{index}" for index in range(FIFO_CLIENTS)])
    for index, conn in enumerate(conn for at, conn in enumerate(waiters) if at != 2):
        assert conn.read(1) == [(REPLY, ["fifo", f"e{index}"])]
    assert admin.request("LRANGE", "fifo", 0, -1) == [f"e{FIFO_CLIENTS - 1}"]


def test_a_client_served_from_one_key_leaves_the_queues_of_its_other_keys(
        connect: Connect) -> None:
    admin, first, second = connect(), connect(), connect()
    block(admin, first, "BLPOP", "k1", "k2", 0)
    block(admin, second, "BLPOP", "k1", 0)
    admin.request("RPUSH", "k2", "a")
    assert first.read(1) == [(REPLY, ["k2", "a"])]
    admin.request("RPUSH", "k1", "b")  # first must no longer be in k1's queue
    assert second.read(1) == [(REPLY, ["k1", "b"])]
    assert first.quiet(0.1)
    # And a client blocked twice on one key is served once.
    block(admin, first, "BLPOP", "k1", "k1", 0)
    admin.request("RPUSH", "k1", "c", "d")
    assert first.read(1) == [(REPLY, ["k1", "c"])]
    assert admin.request("LRANGE", "k1", 0, -1) == ["d"]
    assert blocked_clients(admin) == (0, 0)


def test_two_clients_rotating_one_list_are_both_served(connect: Connect) -> None:
    admin, first, second = connect(), connect(), connect()
    block(admin, first, "BLMOVE", "ring", "ring", "LEFT", "RIGHT", 0)
    block(admin, second, "BLMOVE", "ring", "ring", "LEFT", "RIGHT", 0)
    admin.request("RPUSH", "ring", "only")
    assert first.read(1) == [(REPLY, "only")]
    assert second.read(1) == [(REPLY, "only")]
    assert admin.request("LRANGE", "ring", 0, -1) == ["only"]


def test_a_moved_element_serves_the_client_blocked_on_the_destination(connect: Connect) -> None:
    admin, mover, popper = connect(), connect(), connect()
    block(admin, mover, "BLMOVE", "src", "mid", "LEFT", "RIGHT", 0)
    block(admin, popper, "BLPOP", "mid", 0)
    admin.request("RPUSH", "src", "x")
    assert mover.read(1) == [(REPLY, "x")]
    assert popper.read(1) == [(REPLY, ["mid", "x"])]
    assert admin.request("EXISTS", "src", "mid") == 0


def test_inside_multi_a_blocking_command_answers_at_once(connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv.request("RPUSH", "list", 1, 2, 3)
    kv.request("MULTI")
    for argv in (["BLPOP", "missing", 0], ["BRPOP", "missing", "list", 0],
                 ["BLMOVE", "missing", "dst", "LEFT", "LEFT", 0], ["BLPOPRPUSH", "list", "dst", 0],
                 ["BRPOPLPUSH", "nothing", "dst", 0]):
        assert kv.request(*argv) == "QUEUED"
    started = time.monotonic()
    assert kv.request("EXEC") == [[0, None], [0, ["list", 3]], [0, None], [0, 1], [0, None]]
    assert time.monotonic() - started < 1
    assert blocked_clients(admin) == (0, 0)
    assert admin.request("LRANGE", "dst", 0, -1) == [1]


WAKERS: dict[str, list[list[object]]] = {
    "RPUSH": [["RPUSH", "key", "w"]],
    "LPUSH of several": [["LPUSH", "key", "x", "w"]],
    "a transaction": [["MULTI"], ["SET", "unrelated", 1], ["RPUSH", "key", "w"], ["EXEC"]],
    "RENAME": [["RPUSH", "tmp", "w"], ["RENAME", "tmp", "key"]],
    "RENAMENX": [["RPUSH", "tmp", "w"], ["RENAMENX", "tmp", "key"]],
    "COPY": [["RPUSH", "tmp", "w"], ["COPY", "tmp", "key"]],
    "LMOVE": [["RPUSH", "tmp", "w"], ["LMOVE", "tmp", "key", "LEFT", "LEFT"]],
    "RPOPLPUSH": [["RPUSH", "tmp", "w"], ["RPOPLPUSH", "tmp", "key"]],
    "LPOPRPUSH": [["RPUSH", "tmp", "w"], ["LPOPRPUSH", "tmp", "key"]],
    "BLMOVE that does not wait": [["RPUSH", "tmp", "w"], ["BLMOVE", "tmp", "key", "LEFT", "LEFT", 0]],
}
"""Ways to give the awaited key a list whose head is "w"."""


@pytest.mark.parametrize("waker", WAKERS)
def test_whatever_gives_the_key_a_list_wakes_the_waiter(connect: Connect, waker: str) -> None:
    admin, kv = connect(), connect()
    block(admin, kv, "BLPOP", "key", 0)
    for argv in WAKERS[waker]:
        admin.request(*argv)
    assert kv.read(1) == [(REPLY, ["key", "w"])]
    assert blocked_clients(admin) == (0, 0)


NON_WAKERS: dict[str, list[list[object]]] = {
    "SET of a string": [["SET", "key", "text"], ["DEL", "key"]],
    "LPUSHX of a missing key": [["LPUSHX", "key", "x"]],
    "a push popped in the same transaction": [["MULTI"], ["RPUSH", "key", "x"],
                                              ["LPOP", "key"], ["EXEC"]],
    "a push deleted in the same transaction": [["MULTI"], ["RPUSH", "key", "x", "y"],
                                               ["DEL", "key"], ["EXEC"]],
    "a hash": [["HSET", "key", "f", 1], ["DEL", "key"]],
}


@pytest.mark.parametrize("change", NON_WAKERS)
def test_a_change_that_leaves_no_list_keeps_the_client_blocked(connect: Connect,
                                                                change: str) -> None:
    admin, kv = connect(), connect()
    kv_id = block(admin, kv, "BLPOP", "key", 0)
    for argv in NON_WAKERS[change]:
        admin.request(*argv)
    assert kv.quiet(0.1), kv.backlog
    assert client_entry(admin, kv_id)["blocked"] is True  # type: ignore[index]
    admin.request("RPUSH", "key", "finally")
    assert kv.read(1) == [(REPLY, ["key", "finally"])]


# --- pipelining ------------------------------------------------------------------------------


def test_commands_pipelined_after_a_blocking_one_run_after_it_is_answered(
        connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv_id = kv.request("CLIENT", "ID")
    kv.send(["SET", "x", 1], ["BLPOP", "q", 0], ["GET", "x"], ["INCR", "x"], ["RPUSH", "r", "a"],
            ["LPOP", "r"], ["PING"])
    assert kv.read(1) == [(REPLY, "OK")]
    wait_blocked(admin, kv_id)
    kv.send(["GET", "x"])  # a later write, still behind the blocked command
    assert kv.quiet(0.15)
    assert admin.request("GET", "x") == 1
    admin.request("SET", "x", 5)  # runs before the pipelined GET and INCR
    assert admin.request("EXISTS", "r") == 0
    admin.request("RPUSH", "q", "e")
    assert kv.read(7) == [(REPLY, ["q", "e"]), (REPLY, 5), (REPLY, 6), (REPLY, 1), (REPLY, "a"),
                          (REPLY, "PONG"), (REPLY, 6)]


def test_a_subscribe_pipelined_after_a_blocking_command_starts_pub_sub_once_served(
        connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv_id = kv.request("CLIENT", "ID")
    kv.send(["BLPOP", "q", 0], ["SUBSCRIBE", "ch"], ["GET", "k"], ["PING"])
    wait_blocked(admin, kv_id)
    assert admin.request("PUBLISH", "ch", "too early") == 0  # SUBSCRIBE has not run
    admin.request("RPUSH", "q", "x")
    first = kv.read(4)
    assert first[:2] == [(REPLY, ["q", "x"]), (REPLY, 1)]
    assert first[2][0] == ERROR and "not allowed while subscribed" in str(first[2][1])
    assert first[3] == (REPLY, "PONG")
    assert admin.request("PUBLISH", "ch", "now") == 1
    assert kv.read(1) == [(PUSH, Push("message", ("ch", "now")))]
    assert kv.request("UNSUBSCRIBE") == 0
    assert kv.request("BLPOP", "q", 0.05) is None


def test_a_malformed_frame_sent_while_blocked_ends_the_connection_and_its_wait(
        connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv_id = block(admin, kv, "BLPOP", "q", 0)
    kv.sock.sendall(b"\xff\xff\xff\xff" + b"garbage")  # a frame far over the size limit
    got = kv.closed()
    assert [kind for kind, _ in got] == [ERROR], got
    assert got[0][1].code == ErrorCode.PROTO  # type: ignore[attr-defined]
    wait_until(lambda: client_entry(admin, kv_id) is None, what="the client's removal")
    _no_trace(admin)


def test_a_pipeline_of_blocking_commands_blocks_on_each_in_turn(connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv_id = kv.request("CLIENT", "ID")
    kv.send(["BLPOP", "q1", 0], ["BLPOP", "q2", 0], ["BRPOP", "q3", 0.2], ["ECHO", "end"])
    wait_blocked(admin, kv_id)
    admin.request("RPUSH", "q2", "two")  # no one waits on q2 yet: it stays
    assert kv.quiet(0.1)
    assert admin.request("LRANGE", "q2", 0, -1) == ["two"]
    admin.request("RPUSH", "q1", "one")
    assert kv.read(4, timeout_s=5) == [(REPLY, ["q1", "one"]), (REPLY, ["q2", "two"]),
                                       (REPLY, None), (REPLY, "end")]


# --- clients that go away while blocked --------------------------------------------------------


def _no_trace(admin: PushConnection, key: str = "q") -> None:
    """Nothing is blocked any more, and a push stays in the list."""
    wait_until(lambda: blocked_clients(admin) == (0, 0), what="the waiter's removal")
    admin.request("RPUSH", key, "kept")
    assert admin.request("LRANGE", key, 0, -1) == ["kept"]
    admin.request("DEL", key)


def test_client_kill_of_a_blocked_client_leaves_no_trace(connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv_id = block(admin, kv, "BLPOP", "q", 0)
    assert admin.request("CLIENT", "KILL", "ID", kv_id) == 1
    got = kv.closed()
    assert [(kind, payload.kind) for kind, payload in got] == [(PUSH, "kill")]  # type: ignore[attr-defined]
    wait_until(lambda: client_entry(admin, kv_id) is None, what="the killed client's removal")
    _no_trace(admin)


def test_a_push_right_after_client_kill_is_not_lost(connect: Connect) -> None:
    admin = connect()
    for round_ in range(RACE_ROUNDS):
        kv = connect()
        kv_id = block(admin, kv, "BLPOP", "q", 0)
        admin.send(["CLIENT", "KILL", "ID", kv_id], ["RPUSH", "q", round_])
        assert admin.read(2) == [(REPLY, 1), (REPLY, 1)]
        assert [payload.kind for _, payload in kv.closed()] == ["kill"]  # type: ignore[attr-defined]
        assert admin.request("LPOP", "q") == round_, f"round {round_}: the element was lost"


def test_a_blocked_client_whose_socket_closes_leaves_no_trace(connect: Connect) -> None:
    admin, kv, next_waiter = connect(), connect(), connect()
    kv_id = block(admin, kv, "BLPOP", "q", 0)
    next_id = block(admin, next_waiter, "BLPOP", "q", 0)
    kv.close()
    wait_until(lambda: client_entry(admin, kv_id) is None, what="the closed client's removal")
    admin.request("RPUSH", "q", "for the next")
    assert next_waiter.read(1) == [(REPLY, ["q", "for the next"])]
    assert client_entry(admin, next_id)["blocked"] is False  # type: ignore[index]
    _no_trace(admin)


_PARKED_WAITER = '''
kv = Raw()
emit("id", kv.call("CLIENT", "ID"))
kv.send(["BLPOP", "q", 0])
time.sleep(DEADLINE - time.monotonic())
'''


def test_a_blocked_process_killed_by_sigkill_leaves_no_trace(server: ServerProcess,
                                                             connect: Connect) -> None:
    admin = connect()
    worker = Worker(server, _PARKED_WAITER)
    worker_id = worker.expect("id")
    wait_blocked(admin, worker_id)
    worker.kill()
    wait_until(lambda: client_entry(admin, worker_id) is None, what="the killed client's removal")
    _no_trace(admin)


def test_a_push_right_after_a_blocked_client_closes_is_not_lost(own_connect: Connect) -> None:
    """The server peeks at a waiter's socket before serving it, so a hang-up its
    connection task has not seen yet still keeps the element (found by this test)."""
    admin = own_connect()
    for round_ in range(RACE_ROUNDS):
        kv = own_connect()
        block(admin, kv, "BLPOP", "q", 0)
        next_waiter = None
        if round_ % 2:
            next_waiter = own_connect()
            block(admin, next_waiter, "BLPOP", "q", 0)
        kv.close()
        admin.request("RPUSH", "q", round_)
        if next_waiter is not None:
            got = next_waiter.read_for(0.1)
            if got == [(REPLY, ["q", round_])]:
                continue
            assert got == [], got
            next_waiter.close()
        wait_until(lambda: blocked_clients(admin) == (0, 0), what="the waiters' removal")
        assert admin.request("LPOP", "q") == round_, f"round {round_}: the element was lost"


def test_a_blocked_client_that_pipelined_more_then_closed_leaves_no_trace(
        connect: Connect) -> None:
    admin, kv = connect(), connect()
    kv_id = block(admin, kv, "BLPOP", "q", 0)
    kv.send(["PING"])
    time.sleep(0.05)
    kv.close()
    wait_until(lambda: client_entry(admin, kv_id) is None, what="the closed client's removal")
    _no_trace(admin)


def test_a_blocked_client_survives_a_graceful_shutdown_quickly(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    admin, kv = PushConnection(server), PushConnection(server)
    block(admin, kv, "BLPOP", "q", 0)
    started = time.monotonic()
    assert server.stop() == 0, server.log()
    assert time.monotonic() - started < 5
    assert all(kind == PUSH for kind, _ in kv.closed())
    kv.close()
    admin.close()


# --- the AOF holds the pop that served, not the blocking command -------------------------------


def test_served_pops_are_logged_as_the_non_blocking_command_and_survive_sigkill(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, "--appendfsync", "always")
    admin = PushConnection(server)
    waiting = {
        "q": ["BLPOP", "q", 0], "q2": ["BRPOP", "q2", 0],
        "src": ["BRPOPLPUSH", "src", "dst", 0], "src2": ["BLPOPRPUSH", "src2", "dst2", 0],
        "src3": ["BLMOVE", "src3", "dst3", "RIGHT", "RIGHT", 0],
    }
    conns = {}
    for key, argv in waiting.items():
        conns[key] = PushConnection(server)
        block(admin, conns[key], *argv)
    assert admin.request("BLPOP", "nothing", 0.05) is None  # a timeout logs nothing
    for key in waiting:
        admin.request("RPUSH", key, f"{key}-1", f"{key}-2")
    replies = {key: conn.read(1)[0] for key, conn in conns.items()}
    assert replies == {"q": (REPLY, ["q", "q-1"]), "q2": (REPLY, ["q2", "q2-2"]),
                       "src": (REPLY, "src-2"), "src2": (REPLY, "src2-1"),
                       "src3": (REPLY, "src3-2")}
    admin.request("RPUSH", "ready", "r")
    assert admin.request("BRPOP", "ready", 0) == ["ready", "r"]  # taken at once, logged too
    admin.request("MULTI")
    admin.request("RPUSH", "tx", "t")
    admin.request("BLMOVE", "tx", "txdst", "LEFT", "LEFT", 0)
    admin.request("EXEC")
    commands = aof_commands(data)
    assert [argv for argv in commands if argv[0] != "RPUSH"] == [
        ["LPOP", "q"], ["RPOP", "q2"], ["LMOVE", "src", "dst", "RIGHT", "LEFT"],
        ["LMOVE", "src2", "dst2", "LEFT", "RIGHT"], ["LMOVE", "src3", "dst3", "RIGHT", "RIGHT"],
        ["RPOP", "ready"],
        ["MULTI", ["RPUSH", "tx", "t"], ["LMOVE", "tx", "txdst", "LEFT", "LEFT"]],
    ]
    # Each pop right after the push that served it.
    for key in waiting:
        at = commands.index(["RPUSH", key, f"{key}-1", f"{key}-2"])
        assert commands[at + 1][1] == key
    for conn in [admin, *conns.values()]:
        conn.close()
    server.stop(signal.SIGKILL)

    server = start_server(data)
    kv = PushConnection(server)
    expected = {"q": ["q-2"], "q2": ["q2-1"], "src": ["src-1"], "dst": ["src-2"],
                "src2": ["src2-2"], "dst2": ["src2-1"], "src3": ["src3-1"], "dst3": ["src3-2"],
                "txdst": ["t"]}
    for key, items in expected.items():
        assert kv.request("LRANGE", key, 0, -1) == items, key
    assert kv.request("EXISTS", "ready", "tx", "nothing") == 0
    kv.close()
    assert server.stop() == 0, server.log()


# --- many consumers with short timeouts against one producer ------------------------------------

_CONSUMER = '''
kv = Raw()
emit("ready")
popped, moved, timeouts = [], [], 0
mine = f"mine{ARGS['id']}"
end = time.monotonic() + ARGS["seconds"]
n = 0
while time.monotonic() < end and time.monotonic() < DEADLINE:
    n += 1
    if n % 3 == 0:
        reply = kv.call("BLPOPRPUSH", "jobs", mine, ARGS["timeout"])
        if reply is not None:
            moved.append(reply)
    else:
        reply = kv.call("BLPOP", "jobs", ARGS["timeout"])
        if reply is not None:
            assert reply[0] == "jobs"
            popped.append(reply[1])
    if reply is None:
        timeouts += 1
emit("done", [popped, moved, timeouts])
'''

_PRODUCER = '''
import random
rng = random.Random(7)
kv = Raw()
pushed = 0
while pushed < ARGS["count"] and time.monotonic() < DEADLINE:
    batch = list(range(pushed, min(pushed + rng.choice([1, 1, 1, 2, 5]), ARGS["count"])))
    kv.call("RPUSH", "jobs", *batch)
    pushed += len(batch)
    time.sleep(rng.choice([0, 0.001, 0.002, 0.02]))
emit("done", pushed)
'''


def test_no_element_is_lost_or_duplicated_while_timeouts_race_pushes(
        server: ServerProcess, connect: Connect) -> None:
    consumers = [Worker(server, _CONSUMER, {"id": index, "seconds": STRESS_S,
                                               "timeout": 0.01 * (index + 1)})
                 for index in range(STRESS_CONSUMERS)]
    for worker in consumers:
        worker.expect("ready")
    producer = Worker(server, _PRODUCER, {"count": STRESS_ELEMENTS})
    pushed = producer.expect("done")
    results = [worker.expect("done") for worker in consumers]
    for worker in [producer, *consumers]:
        worker.finish()
    admin = connect()
    taken: list[int] = []
    for index, (popped, moved, _) in enumerate(results):
        # Pushed in order to the tail and taken from the head: each consumer's share rises.
        assert popped == sorted(popped) and moved == sorted(moved), index
        assert admin.request("LRANGE", f"mine{index}", 0, -1) == moved
        taken += popped + moved
    left = admin.request("LRANGE", "jobs", 0, -1)
    assert isinstance(left, list)
    assert sorted(taken + left) == list(range(pushed)), "an element was lost or duplicated"
    assert len(taken) >= 50, (len(taken), pushed)
    assert sum(timeouts for _, _, timeouts in results) > 0, "no timeout raced a push"
    assert blocked_clients(admin) == (0, 0)
