"""Pipelines' modes (buffering, watching, transaction) and what the shells send for them."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from client_helpers import ScriptedServer
from kv_client import (
    AsyncClient,
    AsyncPipeline,
    Client,
    ExecAbortError,
    LocalProtocolError,
    Pipeline,
    TimeoutError,
    WatchError,
    WrongTypeError,
)
from kv_client._pipeline import PipelineBase
from kv_client._recorder import Call
from kv_protocol.errors import CommandSyntaxError
from kv_protocol.messages import encode_error, encode_reply

Run = Callable[[Callable[[], Awaitable[None]]], None]


class Recording(PipelineBase):
    """A pipeline whose immediate calls are answered here."""

    def __init__(self, transaction: bool = False) -> None:
        super().__init__(transaction)
        self.ran: list[tuple[object, ...]] = []

    def _run_held(self, call: Call) -> Any:
        self.ran.append(call.args)
        return call.convert("OK")


def test_buffering_methods_queue_and_chain() -> None:
    pipe = Recording()
    assert pipe.set("a", 1).get("a") is pipe and len(pipe) == 2 and pipe.ran == []
    assert not pipe.in_transaction and Recording(transaction=True).in_transaction


def test_watching_methods_run_at_once_until_multi() -> None:
    pipe = Recording()
    pipe.watching = True                          # what watch() sets once WATCH answered
    # Results, not the pipeline, whatever the static type says (hence ``immediate``).
    assert pipe.set("a", 1) is True  # type: ignore[comparison-overlap]
    assert pipe.execute_command("GET", "a") == "OK"  # type: ignore[comparison-overlap]
    pipe.multi()
    assert pipe.in_transaction
    assert pipe.set("a", 2) is pipe and len(pipe) == 1
    assert pipe.ran == [("SET", "a", 1), ("GET", "a")]


def test_out_of_order_calls_are_refused_before_anything_is_sent() -> None:
    pipe = Recording()
    pipe.multi()
    with pytest.raises(LocalProtocolError, match="multi\\(\\) twice"):
        pipe.multi()
    with pytest.raises(LocalProtocolError, match="cannot WATCH after multi"):
        pipe._check_watch()
    queued = Recording().set("a", 1)
    with pytest.raises(LocalProtocolError, match="after commands were queued"):
        queued.multi()
    with pytest.raises(LocalProtocolError, match="cannot WATCH with commands queued"):
        queued._check_watch()


# -- the shells, against a scripted server holding one counter --------------------

class Counter:
    """A server with one counter, whose EXEC answers null the first ``conflicts`` times."""

    def __init__(self, conflicts: int = 0) -> None:
        self.value = 41
        self.conflicts = conflicts
        self.queued: list[list[object]] = []

    def __call__(self, command: list[object]) -> bytes:
        name = command[0]
        if name in ("WATCH", "UNWATCH"):
            return encode_reply("OK")
        if name == "GET":
            return encode_reply(self.value)
        if name == "SCAN":
            return encode_reply([0, ["counter"]])
        if name == "MULTI":
            self.queued = []
            return encode_reply("OK")
        if name == "SET":
            self.queued.append(command)
            return encode_reply("QUEUED")
        if name == "LPUSH":
            self.queued.append(command)
            return encode_reply("QUEUED")
        assert name == "EXEC", command
        if self.conflicts:
            self.conflicts -= 1
            return encode_reply(None)
        answers: list[object] = []
        for queued in self.queued:
            if queued[0] == "SET":
                self.value = queued[2]  # type: ignore[assignment]
                answers.append([0, "OK"])
            else:
                answers.append([1, "WRONGTYPE", "not a list"])
        return encode_reply(answers)


def increment(pipe: Pipeline) -> None:
    value = pipe.immediate.get("counter")   # typed as Client.get: mypy checks the + 1
    pipe.multi()
    pipe.set("counter", value + 1)


def test_watching_methods_return_results_as_redis_pys_do_and_immediate_is_typed() -> None:
    with ScriptedServer(Counter()) as server, Client(**server.config()) as kv:
        with kv.pipeline() as pipe:
            with pytest.raises(LocalProtocolError, match="call watch\\(\\) first"):
                pipe.immediate.get("counter")
            pipe.watch("counter")
            assert pipe.get("counter") == 41                       # type: ignore[comparison-overlap]
            assert pipe.immediate.get("counter") == 41
            assert list(pipe.immediate.scan_iter()) == ["counter"]
        assert {number for number, _ in server.commands} == {1}


def test_watch_read_multi_execute_share_one_connection_which_goes_back_clean() -> None:
    counter = Counter()
    with ScriptedServer(counter) as server, Client(**server.config()) as kv:
        with kv.pipeline() as pipe:
            assert pipe.watch("counter") is True
            increment(pipe)
            assert pipe.execute() == [True]
        assert counter.value == 42
        assert kv.get("counter") == 42  # the pool's connection: the same one, given back
        assert server.sent() == [["WATCH", "counter"], ["GET", "counter"], ["MULTI"],
                                 ["SET", "counter", 42], ["EXEC"], ["GET", "counter"]]
        assert server.connections == 1


def test_a_changed_watched_key_raises_watch_error_and_the_connection_is_reused() -> None:
    with ScriptedServer(Counter(conflicts=1)) as server, Client(**server.config()) as kv:
        with kv.pipeline() as pipe:
            pipe.watch("counter")
            increment(pipe)
            with pytest.raises(WatchError):
                pipe.execute()
            assert not pipe.watching and len(pipe) == 0
        assert "UNWATCH" not in [command[0] for command in server.sent()]  # EXEC unwatched
        kv.get("counter")
        assert server.connections == 1


def test_leaving_a_watching_pipeline_sends_unwatch() -> None:
    with ScriptedServer(Counter()) as server, Client(**server.config()) as kv:
        with kv.pipeline() as pipe:
            pipe.watch("a", "b")
            assert pipe.immediate.get("counter") == 41
        assert server.sent() == [["WATCH", "a", "b"], ["GET", "counter"], ["UNWATCH"]]
        kv.get("counter")
        assert server.connections == 1


def test_a_refused_first_watch_keeps_no_connection() -> None:
    def refusing(command: list[object]) -> bytes:
        return encode_error(CommandSyntaxError("no keys")) if command == ["WATCH"] else encode_reply(1)

    with ScriptedServer(refusing) as server, Client(**server.config()) as kv:
        pipe = kv.pipeline()
        with pytest.raises(CommandSyntaxError):
            pipe.watch()
        assert not pipe.watching
        assert kv.get("k") == 1
        assert server.connections == 1  # the pool had the connection back


def test_transaction_runs_func_again_while_the_watched_key_changes() -> None:
    calls = []

    def counted(pipe: Pipeline) -> None:
        calls.append(1)
        increment(pipe)

    counter = Counter(conflicts=2)
    with ScriptedServer(counter) as server, Client(**server.config()) as kv:
        assert kv.transaction(counted, "counter") == [True]
        assert len(calls) == 3 and counter.value == 42
        counter.conflicts = 5
        with pytest.raises(WatchError):
            kv.transaction(counted, "counter", retries=2)
        assert len(calls) == 6 and counter.conflicts == 2


def test_a_transaction_pipeline_sends_multi_and_exec_in_one_request() -> None:
    with ScriptedServer(Counter()) as server, Client(**server.config()) as kv:
        with kv.pipeline(transaction=True) as pipe:
            pipe.set("counter", 7).lpush("counter", "x")
            results = pipe.execute(raise_on_error=False)
            assert results[0] is True and isinstance(results[1], WrongTypeError)
            pipe.set("counter", 8).lpush("counter", "x")
            with pytest.raises(WrongTypeError):
                pipe.execute()
            assert pipe.execute() == []                    # nothing queued: nothing sent
        assert server.sent().count(["MULTI"]) == 2


def refusing(command: list[object]) -> bytes:
    if command[0] == "EXEC":
        return encode_error(ExecAbortError())
    if command[0] == "SET":
        return encode_error(CommandSyntaxError("syntax error"))
    return encode_reply("OK" if command[0] == "MULTI" else "QUEUED")


def test_execabort_raises_chained_to_the_refused_command() -> None:
    with ScriptedServer(refusing) as server, Client(**server.config()) as kv:
        pipe = kv.pipeline(transaction=True).get("a").set("a", 1)
        with pytest.raises(ExecAbortError) as caught:
            pipe.execute(raise_on_error=False)
        assert isinstance(caught.value.__cause__, CommandSyntaxError)


def test_commands_that_change_a_pooled_connections_state_are_refused_by_name() -> None:
    with ScriptedServer(Counter()) as server, Client(**server.config()) as kv:
        for argv in (["multi"], ["WATCH", "k"], ["SUBSCRIBE", "news"]):
            with pytest.raises(LocalProtocolError, match="changes the state of its connection"):
                kv.execute(*argv)
        assert server.sent() == []


def slow_pop(command: list[object]) -> bytes:
    if command[0] in ("WATCH", "UNWATCH"):
        return encode_reply("OK")
    time.sleep(0.5)  # the server holds a blocking pop's reply
    return encode_reply(["q", "job"] if command[0] in ("BLPOP", "BRPOP") else "job")


def test_a_blocking_pop_waits_past_the_clients_timeout_for_its_own() -> None:
    with ScriptedServer(slow_pop) as server, Client(**server.config(timeout=0.2)) as kv:
        assert kv.blpop("q", timeout=1) == ("q", "job")
        assert kv.blpoprpush("q", "doing", 0) == "job"     # 0: no limit at all
        with pytest.raises(TimeoutError):
            kv.execute("GET", "k")                          # not blocking: 0.2 s
        assert kv.blmove("q", "doing", 1) == "job"         # the pool replaced the connection


def test_a_watching_pipelines_blocking_pop_waits_its_own_timeout_too() -> None:
    with ScriptedServer(slow_pop) as server, Client(**server.config(timeout=0.2)) as kv, \
            kv.pipeline() as pipe:
        pipe.watch("q")
        assert pipe.immediate.blpop("q", 1) == ("q", "job")


# -- the async pipeline --------------------------------------------------------------

async def async_increment(pipe: AsyncPipeline) -> None:
    value = await pipe.immediate.get("counter")
    pipe.multi()
    pipe.set("counter", value + 1)


def test_async_watch_flow_and_transaction_retries(run: Run) -> None:
    async def body() -> None:
        counter = Counter(conflicts=1)
        with ScriptedServer(counter) as server:
            async with AsyncClient(**server.config()) as kv:
                async with kv.pipeline() as pipe:
                    await pipe.watch("counter")
                    assert await pipe.get("counter") == 41  # type: ignore[misc]  # redis-py's way
                    await async_increment(pipe)
                    with pytest.raises(WatchError):
                        await pipe.execute()
                assert await kv.transaction(async_increment, "counter") == [True]
                assert counter.value == 42
                async with kv.pipeline() as pipe:
                    await pipe.watch("counter")
                assert await kv.get("counter") == 42
            assert server.sent()[-3:] == [["WATCH", "counter"], ["UNWATCH"], ["GET", "counter"]]
            assert server.connections == 1

    run(body)


def test_async_pipeline_left_by_an_exception_closes_its_watching_connection(run: Run) -> None:
    async def body() -> None:
        with ScriptedServer(Counter()) as server:
            async with AsyncClient(**server.config()) as kv:

                async def watch_then_fail() -> None:
                    async with kv.pipeline() as pipe:
                        await pipe.watch("counter")
                        raise KeyError("the caller's own error")

                with pytest.raises(KeyError):
                    await watch_then_fail()
                await kv.get("counter")
            assert "UNWATCH" not in [command[0] for command in server.sent()]
            assert server.connections == 2

    run(body)


def test_async_blocking_pop_waits_past_the_clients_timeout(run: Run) -> None:
    async def body() -> None:
        with ScriptedServer(slow_pop) as server:
            async with AsyncClient(**server.config(timeout=0.2)) as kv:
                assert await kv.brpop(["q", "r"], 1) == ("q", "job")
                with pytest.raises(TimeoutError):
                    await kv.execute("GET", "k")

    run(body)


def test_a_pipeline_refuses_the_commands_it_sends_itself() -> None:
    for argv in (("MULTI",), ("exec",), ("WATCH", "k"), ("UNWATCH",), ("SUBSCRIBE", "news")):
        with pytest.raises(LocalProtocolError, match="changes the state of its connection"):
            Recording().execute_command(*argv)
