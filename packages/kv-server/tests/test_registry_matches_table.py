import pytest

from kv_protocol.commands import BY_NAME
from kv_server import _dispatch
from kv_server._blocking import Blocking
from kv_server._dispatch import Dispatcher, command, registered_names
from kv_server._keyspace import Keyspace
from kv_server._stats import Stats


def test_every_table_command_is_implemented_and_nothing_else() -> None:
    assert registered_names() == frozenset(BY_NAME)


def test_registering_a_name_outside_the_table_fails() -> None:
    with pytest.raises(LookupError, match="not in the command table"):
        command("NOSUCHCOMMAND")


def test_registering_twice_fails() -> None:
    with pytest.raises(LookupError, match="registered twice"):
        command("GET")(lambda ctx, argv: None)


def test_dispatcher_refuses_to_start_when_registry_and_table_disagree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = dict(_dispatch._REGISTRY)
    del registry["GET"]
    monkeypatch.setattr(_dispatch, "_REGISTRY", registry)
    with pytest.raises(RuntimeError, match=r"not implemented \['GET'\]"):
        Dispatcher(Stats(), Blocking(Keyspace()))
