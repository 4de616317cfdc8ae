from kv_server._state import ServerState
from server_helpers import Call


def test_del_counts_existing_keys(state: ServerState, call: Call) -> None:
    call("MSET", "a", 1, "b", 2)
    dirty = state.keyspace.dirty
    assert call("DEL", "a", "missing", "a", "b") == 2
    assert call("DBSIZE") == 0
    assert state.keyspace.dirty == dirty + 2


def test_exists_counts_repeats(call: Call) -> None:
    call("SET", "a", 1)
    assert call("EXISTS", "a", "a", "b") == 2


def test_type(call: Call) -> None:
    call("SET", "a", [1, 2])
    assert (call("TYPE", "a"), call("TYPE", "b")) == ("string", "none")


def test_keys_matches_text_and_bytes_keys(call: Call) -> None:
    call("MSET", "user:1", 1, "user:2", 2, b"user:3", 3, "other", 4, b"\xffraw", 5)
    assert sorted(call("KEYS", "user:*"), key=repr) == sorted(["user:1", "user:2", b"user:3"], key=repr)
    assert call("KEYS", b"user:[13]") == ["user:1", b"user:3"]
    assert call("KEYS", b"\xff*") == [b"\xffraw"]
    assert len(call("KEYS", "*")) == 5


def test_dbsize(call: Call) -> None:
    assert call("DBSIZE") == 0
    call("MSET", "a", 1, b"a", 2)
    assert call("DBSIZE") == 2
