"""kv_client's blocking pops against a real kv-server: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
BLPOPRPUSH.

What must hold: a pop that finds nothing answers None once its timeout passes (and
not much later); an element pushed by another client is handed to the waiter, the
longest waiting first, one element each; the client's own reply timeout is added to
the pop's, so a short ``timeout=`` never cuts a long wait; and a waiter cancelled or
gone is served nothing. Every wait here is bounded by a timeout, a thread join or an
async deadline.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from client_helpers import run_kv
from integration_helpers import PASSWORD, ServerProcess
from kv_client import AsyncClient, Client
from test_client_async import Runner, both, cancelled_after, gather, sleep

WAIT_S = 10.0
"""How long a served pop may take, or a condition be waited for: far above what it needs."""
SHORT_S = 0.3
LATE_S = 3.0
"""How late a timed-out pop may answer: generous for a loaded CI machine, yet it
tells a pop that honours its timeout from one that does not."""
WAITERS = 4


@pytest.fixture
def kv(module_kv_server: ServerProcess) -> Iterator[Client]:
    with module_kv_server.client(timeout=WAIT_S) as client:
        yield client


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S} s"
        time.sleep(0.005)


def blocked(kv: Client, name: str) -> bool:
    """Whether the connection named ``name`` is blocked (CLIENT LIST)."""
    return any(entry["name"] == name and entry["blocked"] for entry in kv.client_list())


class Waiter(threading.Thread):
    """A thread running one blocking call on a client of its own, named for CLIENT LIST."""

    def __init__(self, server: ServerProcess, name: str, call: Callable[[Client], Any]) -> None:
        super().__init__(daemon=True)
        self.server, self.name_, self.call = server, name, call
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.server.client(name=self.name_) as client:
                self.result = self.call(client)
        except BaseException as exc:
            self.error = exc

    def outcome(self) -> Any:
        self.join(WAIT_S)
        assert not self.is_alive(), f"{self.name_} is still blocked"
        if self.error is not None:
            raise self.error
        return self.result


def test_a_pop_that_finds_nothing_answers_none_once_its_timeout_passes(kv: Client) -> None:
    kv.delete("bl:empty", "bl:also")
    for pop in (lambda: kv.blpop(["bl:empty", "bl:also"], SHORT_S),
                lambda: kv.brpop("bl:empty", SHORT_S),
                lambda: kv.blmove("bl:empty", "bl:dst", SHORT_S),
                lambda: kv.brpoplpush("bl:empty", "bl:dst", SHORT_S),
                lambda: kv.blpoprpush("bl:empty", "bl:dst", SHORT_S)):
        started = time.monotonic()
        assert pop() is None
        assert SHORT_S * 0.9 <= time.monotonic() - started < LATE_S


def test_a_short_client_timeout_does_not_cut_a_longer_pop(module_kv_server: ServerProcess) -> None:
    with module_kv_server.client(timeout=0.2) as kv:
        kv.delete("bl:patient")
        started = time.monotonic()
        assert kv.blpop("bl:patient", 1) is None       # 1 s of waiting past a 0.2 s timeout
        assert 0.9 <= time.monotonic() - started < LATE_S
        assert kv.ping() == "PONG"                     # and the connection is fine


def test_a_waiter_is_served_by_another_clients_push_with_the_elements_type(
        module_kv_server: ServerProcess, kv: Client) -> None:
    kv.delete("bl:jobs")
    waiter = Waiter(module_kv_server, "bl:worker", lambda c: c.blpop(["bl:none", "bl:jobs"], 0))
    waiter.start()
    wait_until(lambda: blocked(kv, "bl:worker"), "the worker blocking")
    assert kv.rpush("bl:jobs", {"id": 7, "args": [1.5, None]}) == 1
    assert waiter.outcome() == ("bl:jobs", {"id": 7, "args": [1.5, None]})
    assert kv.llen("bl:jobs") == 0


def test_blocked_clients_are_served_in_the_order_they_blocked(
        module_kv_server: ServerProcess, kv: Client) -> None:
    kv.delete("bl:fifo")
    waiters = []
    for number in range(WAITERS):
        waiter = Waiter(module_kv_server, f"bl:fifo{number}", lambda c: c.brpop("bl:fifo", WAIT_S))
        waiter.start()
        wait_until(functools.partial(blocked, kv, waiter.name_), f"{waiter.name_} blocking")
        waiters.append(waiter)
    for element in range(WAITERS):                       # one at a time: each serves the oldest
        kv.lpush("bl:fifo", element)
    assert [waiter.outcome() for waiter in waiters] == [("bl:fifo", n) for n in range(WAITERS)]


def test_one_push_of_several_elements_serves_one_element_to_each_waiter_in_order(
        module_kv_server: ServerProcess, kv: Client) -> None:
    kv.delete("bl:batch", "bl:doing")
    waiters = []
    for number in range(WAITERS):
        waiter = Waiter(module_kv_server, f"bl:batch{number}",
                        lambda c: c.blpoprpush("bl:batch", "bl:doing", WAIT_S))
        waiter.start()
        wait_until(functools.partial(blocked, kv, waiter.name_), f"{waiter.name_} blocking")
        waiters.append(waiter)
    assert kv.rpush("bl:batch", *range(WAITERS + 1)) == WAITERS + 1
    assert [waiter.outcome() for waiter in waiters] == list(range(WAITERS))
    assert kv.lrange("bl:batch", 0, -1) == [WAITERS]     # the one nobody waited for
    assert kv.lrange("bl:doing", 0, -1) == list(range(WAITERS))


def test_the_moves_take_and_put_at_the_ends_they_name(kv: Client) -> None:
    kv.delete("bl:src", "bl:dst")
    kv.rpush("bl:src", 1, 2, 3, 4)
    assert kv.blmove("bl:src", "bl:dst", 1, "RIGHT", "LEFT") == 4
    assert kv.brpoplpush("bl:src", "bl:dst", 1) == 3
    assert kv.blpoprpush("bl:src", "bl:dst", 1) == 1
    assert kv.lrange("bl:dst", 0, -1) == [3, 4, 1]
    assert kv.brpop(["bl:none", "bl:src"], 1) == ("bl:src", 2)


def test_a_queue_worker_parks_each_job_until_it_is_done(module_kv_server: ServerProcess,
                                                       kv: Client) -> None:
    kv.delete("bl:queue", "bl:in-progress")
    done: list[Any] = []

    def worker(client: Client) -> None:
        while (job := client.blpoprpush("bl:queue", "bl:in-progress", 1)) is not None:
            done.append(job["n"] * 2)
            client.lrem("bl:in-progress", 1, job)

    thread = Waiter(module_kv_server, "bl:queue-worker", worker)
    thread.start()
    for n in range(20):
        kv.rpush("bl:queue", {"n": n})
    thread.outcome()                                     # it stops after 1 s without jobs
    assert done == [n * 2 for n in range(20)]
    assert kv.llen("bl:in-progress") == 0


@both
def test_async_pops_are_served_and_time_out(run: Runner, module_kv_server: ServerProcess) -> None:
    async def body() -> None:
        async with AsyncClient(module_kv_server.host, module_kv_server.port, password=PASSWORD,
                               timeout=0.2) as kv:
            await kv.delete("bl:async")
            served: list[Any] = []

            async def waiter() -> None:
                served.append(await kv.blpop("bl:async", 5))

            async def pusher() -> None:
                await sleep(0.3)                           # past the client's own timeout
                await kv.rpush("bl:async", "late")

            await gather(waiter, pusher)
            assert served == [("bl:async", "late")]
            started = time.monotonic()
            assert await kv.brpoplpush("bl:async", "bl:async-dst", SHORT_S) is None
            assert SHORT_S * 0.9 <= time.monotonic() - started < LATE_S

    run(body)


@both
def test_a_cancelled_async_pop_is_served_nothing(run: Runner, module_kv_server: ServerProcess,
                                                 kv: Client) -> None:
    kv.delete("bl:cancelled")

    async def body() -> None:
        async with AsyncClient(module_kv_server.host, module_kv_server.port, password=PASSWORD,
                               name="bl:cancelled") as client:
            async def pop() -> None:
                await client.blpop("bl:cancelled", 0)

            assert await cancelled_after(0.3, pop)
            assert await client.ping() == "PONG"           # on a new connection

    run(body)
    wait_until(lambda: not blocked(kv, "bl:cancelled"), "the cancelled waiter leaving")
    kv.rpush("bl:cancelled", "kept")
    assert kv.lrange("bl:cancelled", 0, -1) == ["kept"]


def test_kv_runs_blocking_pops_past_its_own_timeout(module_kv_server: ServerProcess,
                                                    kv: Client) -> None:
    kv.delete("bl:cli")
    started = time.monotonic()
    result = run_kv(module_kv_server.port, PASSWORD, "--timeout", "0.2", "BLPOP", "bl:cli", "0.6")
    assert (result.returncode, result.stdout, result.stderr) == (0, "\n", "")  # null
    assert 0.5 <= time.monotonic() - started < LATE_S + 2
    kv.rpush("bl:cli", "job")
    assert run_kv(module_kv_server.port, PASSWORD, "BLPOPRPUSH", "bl:cli", "bl:cli-doing",
                  "1").stdout == "job\n"
