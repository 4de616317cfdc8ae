"""The generated async and pipeline methods are current and mirror the blocking ones."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from kv_client import _codegen
from kv_client._commands import Commands
from kv_client._commands_async import AsyncCommands
from kv_client._commands_pipeline import PipelineCommands
from kv_client._pipeline import PipelineBase


@pytest.mark.parametrize("name", sorted(_codegen.GENERATED))
def test_generated_file_is_current(name: str) -> None:
    current = (_codegen.SOURCE_DIR / name).read_text()
    assert current == _codegen.GENERATED[name](), (
        f"{name} is stale: run `python -m kv_client._codegen`")


def blocking_methods() -> dict[str, Any]:
    return {name: member for name, member in inspect.getmembers(Commands, inspect.isfunction)
            if not name.startswith("_") and name not in _codegen.HAND_WRITTEN}


@pytest.mark.parametrize("generated", [AsyncCommands, PipelineCommands])
def test_every_blocking_method_has_a_twin_with_its_parameters_and_docstring(generated: type) -> None:
    blocking = blocking_methods()
    twins = {name: member for name, member in inspect.getmembers(generated, inspect.isfunction)
             if not name.startswith("_")}
    assert set(twins) == set(blocking)
    for name, method in blocking.items():
        assert inspect.signature(twins[name]).parameters == inspect.signature(method).parameters, name
        assert twins[name].__doc__ == method.__doc__, name


def test_async_twins_are_coroutines() -> None:
    for name in blocking_methods():
        assert inspect.iscoroutinefunction(getattr(AsyncCommands, name)), name


class Queue(PipelineBase):
    """A pipeline that is never sent."""

    def _run_held(self, call: Any) -> Any:
        raise AssertionError(f"{call} was run: this pipeline only queues")


@pytest.mark.parametrize(("call", "sent"), [
    (lambda p: p.set("k", 1, ex=10, nx=True), ("SET", "k", 1, "EX", 10, "NX")),
    (lambda p: p.lpos("q", "x", count=0), ("LPOS", "q", "x", "COUNT", 0)),
    (lambda p: p.hset("h", {"f": 1}), ("HSET", "h", "f", 1)),
    (lambda p: p.ping(), ("PING",)),
    (lambda p: p.client_kill(3), ("CLIENT", "KILL", "ID", 3)),
    (lambda p: p.execute_command("GET", "k"), ("GET", "k")),
])
def test_a_pipeline_queues_what_the_blocking_method_sends(call: Any, sent: tuple[object, ...]) -> None:
    queue = Queue()
    assert call(queue) is queue
    [queued] = queue._take()
    assert queued.args == sent


def test_pipeline_conversions_are_the_blocking_methods() -> None:
    queue = Queue().set("k", 1).set("k", 1, nx=True).incr("n").scan()
    calls = queue._take()
    assert [call.convert(reply) for call, reply in zip(calls, ["OK", None, 3, [5, ["a"]]], strict=True)] \
        == [True, False, 3, (5, ["a"])]
