"""The client's methods and the command table cannot drift apart."""

import inspect
from typing import Any

import pytest

from kv_client._commands import Commands, method_name
from kv_protocol.commands import BY_NAME, COMMANDS

HELPERS = {"execute_command"}


def command_methods() -> dict[str, Any]:
    return {name: member for name, member in vars(Commands).items()
            if inspect.isfunction(member) and not name.startswith("_") and name not in HELPERS}


def test_every_command_has_a_method_and_every_method_a_command() -> None:
    assert set(command_methods()) == {method_name(spec.name) for spec in COMMANDS}


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
def test_docstring_is_the_tables_summary(spec: Any) -> None:
    assert command_methods()[method_name(spec.name)].__doc__ == spec.summary


class Recorder(Commands):
    def __init__(self) -> None:
        self.sent: list[tuple[object, ...]] = []

    def execute_command(self, *args: object) -> Any:
        self.sent.append(args)
        return {"CLIENT": 1, "DEL": 2, "EXISTS": 1, "APPEND": 3, "STRLEN": 3, "DBSIZE": 0,
                "TYPE": "string"}.get(str(args[0]), "OK")


@pytest.mark.parametrize(
    ("call", "sent"),
    [
        (lambda c: c.ping(), ("PING",)),
        (lambda c: c.ping(None), ("PING", None)),
        (lambda c: c.set("k", 1), ("SET", "k", 1)),
        (lambda c: c.mset({"a": 1, b"b": [2]}), ("MSET", "a", 1, b"b", [2])),
        (lambda c: c.mget("a", "b"), ("MGET", "a", "b")),
        (lambda c: c.delete("a", "b"), ("DEL", "a", "b")),
        (lambda c: c.keys(), ("KEYS", "*")),
        (lambda c: c.info("server", "stats"), ("INFO", "server", "stats")),
        (lambda c: c.client_kill(3, 4), ("CLIENT", "KILL", "ID", 3, 4)),
        (lambda c: c.client_setname("n"), ("CLIENT", "SETNAME", "n")),
    ],
)
def test_methods_send_the_tables_syntax(call: Any, sent: tuple[object, ...]) -> None:
    recorder = Recorder()
    call(recorder)
    assert recorder.sent == [sent]
    assert BY_NAME[" ".join(str(s) for s in sent[:2])] if sent[0] == "CLIENT" else BY_NAME[str(sent[0])]


def test_status_methods_return_true() -> None:
    recorder = Recorder()
    assert recorder.set("k", 1) is True and recorder.flushall() is True
