"""kv_client's transactions against a real kv-server: MULTI/EXEC pipelines and WATCH.

What must hold: a transaction pipeline's results are its commands' results, converted
as their methods convert them, with run-time errors in place (the others ran) and
EXECABORT when a command is refused while queueing (none ran); optimistic locking
makes a read-modify-write exact under any contention, from threads, processes and
async tasks alike; and a connection that watched keys goes back to the pool
unwatched. Every test is bounded: thread joins, process waits and async bodies
have deadlines.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from client_helpers import XOR, run_kv
from integration_helpers import PASSWORD, ServerProcess
from kv_client import (
    AsyncClient,
    AsyncPipeline,
    Client,
    ExecAbortError,
    LocalProtocolError,
    NotIntegerError,
    Pipeline,
    ServerError,
    WatchError,
    WrongTypeError,
)
from test_client_async import Runner, both, gather

THREADS = 8
PROCESSES = 4
INCREMENTS = 40
"""Per thread, process or task: enough for the WATCHes to collide many times."""
JOIN_S = 60.0


@pytest.fixture
def kv(module_kv_server: ServerProcess) -> Iterator[Client]:
    with module_kv_server.client(timeout=10) as client:
        yield client


def increment(key: str) -> Any:
    """A read-modify-write that only WATCH makes safe: GET, then SET of one more."""
    def func(pipe: Pipeline) -> None:
        value = pipe.immediate.get(key) or 0          # pipe.get(key), typed for mypy
        pipe.multi()
        pipe.set(key, value + 1)
    return func


def test_threads_incrementing_one_watched_counter_lose_no_increment(kv: Client) -> None:
    kv.delete("tx:threads")
    attempts = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(INCREMENTS):
                counted = increment("tx:threads")

                def func(pipe: Pipeline, counted: Any = counted) -> None:
                    attempts.append(1)
                    counted(pipe)

                assert kv.transaction(func, "tx:threads") == [True]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_S)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert kv.get("tx:threads") == THREADS * INCREMENTS
    assert len(attempts) >= THREADS * INCREMENTS  # each WatchError ran func again


PROCESS_CODE = """
import sys
from kv_client import Client

host, port, password, key, count = sys.argv[1:]
with Client(host, int(port), password=password) as kv:
    def func(pipe):
        value = pipe.get(key) or 0
        pipe.multi()
        pipe.set(key, value + 1)
    for _ in range(int(count)):
        kv.transaction(func, key)
"""


def test_processes_incrementing_one_watched_counter_lose_no_increment(
        module_kv_server: ServerProcess, kv: Client) -> None:
    kv.delete("tx:processes")
    argv = [sys.executable, "-c", PROCESS_CODE, module_kv_server.host, str(module_kv_server.port),
            PASSWORD, "tx:processes", str(INCREMENTS)]
    workers = [subprocess.Popen(argv, stderr=subprocess.PIPE) for _ in range(PROCESSES)]
    try:
        for worker in workers:
            _, stderr = worker.communicate(timeout=JOIN_S)
            assert worker.returncode == 0, stderr.decode()
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert kv.get("tx:processes") == PROCESSES * INCREMENTS


@both
def test_async_tasks_incrementing_one_watched_counter_lose_no_increment(
        run: Runner, module_kv_server: ServerProcess) -> None:
    async def body() -> None:
        async with AsyncClient(module_kv_server.host, module_kv_server.port,
                               password=PASSWORD) as kv:
            await kv.delete("tx:tasks")

            async def func(pipe: AsyncPipeline) -> None:
                value = await pipe.immediate.get("tx:tasks") or 0
                pipe.multi()
                pipe.set("tx:tasks", value + 1)

            async def task() -> None:
                for _ in range(INCREMENTS // 2):
                    await kv.transaction(func, "tx:tasks")

            await gather(*[task] * THREADS)
            assert await kv.get("tx:tasks") == THREADS * (INCREMENTS // 2)

    run(body)


def test_a_transactions_results_are_its_commands_with_errors_in_place(kv: Client) -> None:
    kv.delete("tx:n", "tx:s")
    with kv.pipeline(transaction=True) as pipe:
        pipe.set("tx:n", 1).incr("tx:n").set("tx:s", "x").lpush("tx:s", 1).set("tx:n", 5, nx=True)
        results = pipe.execute(raise_on_error=False)
        assert results[:3] == [True, 2, True]
        assert isinstance(results[3], WrongTypeError)
        assert results[4] is False                   # NX stopped it: SET's own conversion
        pipe.incr("tx:s").incr("tx:n")
        with pytest.raises(NotIntegerError):
            pipe.execute()
    assert kv.get("tx:n") == 3                       # no rollback: the command after ran


def test_a_command_refused_while_queueing_aborts_the_whole_transaction(kv: Client) -> None:
    kv.set("tx:abort", "before")
    pipe = kv.pipeline(transaction=True)
    pipe.set("tx:abort", "after").execute_command("SET", "tx:abort")   # wrong arity
    with pytest.raises(ExecAbortError) as caught:
        pipe.execute(raise_on_error=False)
    assert isinstance(caught.value.__cause__, ServerError)
    assert "wrong number of arguments" in str(caught.value.__cause__)
    assert kv.get("tx:abort") == "before"


def test_a_watched_key_written_by_another_client_aborts_the_transaction(
        module_kv_server: ServerProcess, kv: Client) -> None:
    kv.set("tx:watched", 10)
    with module_kv_server.client() as other, kv.pipeline() as pipe:
        pipe.watch("tx:watched")
        assert pipe.get("tx:watched") == 10  # type: ignore[comparison-overlap]  # redis-py's way
        other.set("tx:watched", 99)
        pipe.multi()
        pipe.set("tx:watched", 11)
        with pytest.raises(WatchError):
            pipe.execute()
        pipe.watch("tx:watched")                     # again: nothing changes it this time
        value = pipe.immediate.get("tx:watched")
        pipe.multi()
        pipe.set("tx:watched", value + 1)
        assert pipe.execute() == [True]
    assert kv.get("tx:watched") == 100


def named(kv: Client, name: str) -> dict[str, Any]:
    [entry] = [entry for entry in kv.client_list() if entry["name"] == name]
    return entry


def test_a_connection_that_watched_goes_back_to_the_pool_unwatched(
        module_kv_server: ServerProcess, kv: Client) -> None:
    with module_kv_server.client(name="tx:solo", max_connections=1) as solo:
        with solo.pipeline() as pipe:
            pipe.watch("tx:a", "tx:b")
            assert named(kv, "tx:solo")["watch"] == 2
        assert named(kv, "tx:solo")["watch"] == 0    # UNWATCH on leaving
        kv.set("tx:a", "changed")                    # would abort the next EXEC if still watched
        with solo.pipeline(transaction=True) as pipe:
            assert pipe.set("tx:b", 1).execute() == [True]
        assert len([e for e in kv.client_list() if e["name"] == "tx:solo"]) == 1


def test_transaction_gives_up_after_its_retries(module_kv_server: ServerProcess, kv: Client) -> None:
    kv.set("tx:busy", 0)
    calls = []

    def func(pipe: Pipeline) -> None:
        calls.append(pipe.immediate.get("tx:busy"))
        kv.incr("tx:busy")                          # another connection changes the key each time
        pipe.multi()
        pipe.set("tx:busy", -1)

    with pytest.raises(WatchError):
        kv.transaction(func, "tx:busy", retries=2)
    assert calls == [0, 1, 2] and kv.get("tx:busy") == 3


def test_misuse_is_refused_before_anything_is_sent(kv: Client) -> None:
    with kv.pipeline() as pipe:
        pipe.multi()
        with pytest.raises(LocalProtocolError, match="cannot WATCH after multi"):
            pipe.watch("tx:k")
    with pytest.raises(LocalProtocolError, match="pipeline\\(transaction=True\\)"):
        kv.execute("MULTI")
    with pytest.raises(ServerError, match="wrong number of arguments for 'watch'"):
        kv.pipeline().watch()                        # the server's check; no connection kept


def test_a_blocking_pop_inside_a_transaction_answers_at_once(kv: Client) -> None:
    kv.delete("tx:empty")
    started = time.monotonic()
    with kv.pipeline(transaction=True) as pipe:
        assert pipe.blpop("tx:empty", 0).rpush("tx:empty", 1).blpop("tx:empty", 0).execute() == [
            None, 1, ("tx:empty", 1)]
    assert time.monotonic() - started < 5


def test_values_in_a_transaction_are_encrypted_and_decrypted(module_kv_server: ServerProcess,
                                                             kv: Client) -> None:
    with module_kv_server.client(encryption=XOR) as sealed, sealed.pipeline(transaction=True) as pipe:
        pipe.set("tx:card", {"cvc": 123}).get("tx:card").rpush("tx:cards", [1]).lpop("tx:cards")
        assert pipe.execute() == [True, {"cvc": 123}, 1, [1]]
    assert kv.get("tx:card").startswith(b"\x00kvenc1:xor\x00")


@both
def test_async_transaction_pipeline_and_watch(run: Runner, module_kv_server: ServerProcess) -> None:
    async def body() -> None:
        async with AsyncClient(module_kv_server.host, module_kv_server.port,
                               password=PASSWORD) as kv, \
                AsyncClient(module_kv_server.host, module_kv_server.port,
                            password=PASSWORD) as other:
            await kv.delete("tx:async", "tx:list")
            async with kv.pipeline(transaction=True) as pipe:
                pipe.set("tx:async", 1).incr("tx:async").lpush("tx:async", 1)
                results = await pipe.execute(raise_on_error=False)
                assert results[:2] == [True, 2] and isinstance(results[2], WrongTypeError)
            async with kv.pipeline() as pipe:
                await pipe.watch("tx:async")
                value = await pipe.get("tx:async")  # type: ignore[misc]  # redis-py's way
                await other.incr("tx:async")
                pipe.multi()
                pipe.set("tx:async", value * 10)
                with pytest.raises(WatchError):
                    await pipe.execute()
            assert await kv.get("tx:async") == 3

    run(body)


def test_the_kv_prompt_runs_a_transaction_on_its_one_connection(module_kv_server: ServerProcess) -> None:
    script = (b"DEL tx:cli\nMULTI\nSET tx:cli hello\nLPUSH tx:cli x\nGET tx:cli\nEXEC\n"
              b"WATCH tx:cli\nSET tx:cli changed\nMULTI\nSET tx:cli lost\nEXEC\nGET tx:cli\n")
    result = run_kv(module_kv_server.port, PASSWORD, stdin=script)
    assert result.stdout.splitlines() == [
        "0", "OK", "QUEUED", "QUEUED", "QUEUED",
        "OK", "(error) WRONGTYPE Operation against a key holding the wrong kind of value", "hello",
        "OK", "OK", "OK", "QUEUED", "", "changed"]            # EXEC's null: the watched key changed
    assert (result.returncode, result.stderr) == (0, "")
