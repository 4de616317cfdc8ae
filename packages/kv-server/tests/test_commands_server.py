import os

import pytest

from kv_protocol.errors import ServerError
from kv_server._state import ServerState
from server_helpers import Call


def test_flushall(state: ServerState, call: Call) -> None:
    call("MSET", "a", 1, "b", 2)
    assert call("FLUSHALL") == "OK"
    assert call("DBSIZE") == 0
    assert call("GET", "a") is None


def test_info_default_sections(call: Call) -> None:
    info = call("INFO")
    assert list(info) == ["server", "clients", "memory", "persistence", "stats", "keyspace",
                          "errorstats"]
    assert info["server"]["process_id"] == os.getpid()
    assert info["server"]["kv_version"] == "0.1.0"
    assert info["clients"]["connected_clients"] == 1
    assert info["memory"]["used_memory_rss"] > 0
    assert info["memory"]["used_memory_peak"] >= info["memory"]["used_memory_rss"]


@pytest.mark.parametrize("group", ["all", "everything", "ALL"])
def test_info_all_adds_commandstats(call: Call, group: str) -> None:
    assert "commandstats" in call("INFO", group)


def test_info_named_sections_and_unknown_ones(call: Call) -> None:
    assert list(call("INFO", "Keyspace", "stats", "nosuch")) == ["stats", "keyspace"]
    assert call("INFO", "nosuch") == {}


def test_info_counts(call: Call) -> None:
    call("SET", "k", 1)
    call("GET", "k")
    call("GET", "missing")
    with pytest.raises(ServerError):
        call("GET")
    info = call("INFO", "all")
    assert info["keyspace"] == {"keys": 1, "expires": 0, "scan_cursors": 0}
    assert info["stats"]["keyspace_hits"] == 1
    assert info["stats"]["keyspace_misses"] == 1
    assert info["stats"]["total_error_replies"] == 1
    assert info["errorstats"] == {"ERR": 1}
    assert info["commandstats"]["get"] == {"calls": 2, "failed_calls": 0, "rejected_calls": 1}
    assert info["stats"]["total_commands_processed"] == 3


def test_info_never_shows_the_password(call: Call) -> None:
    from protocol_helpers import PASSWORD

    assert PASSWORD not in repr(call("INFO", "everything"))
