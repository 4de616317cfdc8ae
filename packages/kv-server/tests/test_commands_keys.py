import pytest

from kv_protocol.errors import NoKeyError, ServerError
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


def test_rename_and_renamenx(call: Call) -> None:
    call("RPUSH", "a", 1, 2)
    call("SET", "b", "x")
    assert call("RENAME", "a", "b") == "OK"
    assert call("LRANGE", "b", 0, -1) == [1, 2] and call("EXISTS", "a") == 0
    assert call("RENAME", "b", "b") == "OK"
    with pytest.raises(NoKeyError):
        call("RENAME", "a", "c")
    call("SET", "c", 1)
    assert call("RENAMENX", "b", "c") == 0 and call("RENAMENX", "b", "d") == 1
    assert call("RENAMENX", "d", "d") == 0
    assert call("RENAME", "d", b"d") == "OK", "text and bytes names are different keys"
    assert call("LRANGE", b"d", 0, -1) == [1, 2]


def test_copy_is_independent(call: Call) -> None:
    call("RPUSH", "l", 1)
    call("HSET", "h", "f", [1])
    assert call("COPY", "l", "l2") == 1 and call("COPY", "h", "h2") == 1
    call("RPUSH", "l2", 2)
    call("HSET", "h2", "g", 2)
    assert call("LRANGE", "l", 0, -1) == [1] and call("HGETALL", "h") == {"f": [1]}
    assert call("COPY", "l", "h2") == 0
    assert call("COPY", "l", "h2", "REPLACE") == 1 and call("TYPE", "h2") == "list"
    assert call("COPY", "missing", "x") == 0
    with pytest.raises(ServerError, match="same"):
        call("COPY", "l", "l")


def test_unlink_touch_randomkey(call: Call) -> None:
    assert call("RANDOMKEY") is None
    call("MSET", "a", 1, "b", 2)
    assert call("TOUCH", "a", "b", "c") == 2
    assert call("RANDOMKEY") in ("a", "b")
    assert call("UNLINK", "a", "c") == 1 and call("RANDOMKEY") == "b"


def test_object_encoding(call: Call) -> None:
    call("MSET", "i", 1, "f", 1.0, "t", "x", "b", b"x", "n", None, "a", [1], "m", {})
    call("RPUSH", "l", 1)
    call("HSET", "h", "f", 1)
    names = [call("OBJECT", "ENCODING", k) for k in ("i", "f", "t", "b", "n", "a", "m", "l", "h")]
    assert names == ["int", "float", "text", "bytes", "null", "array", "map", "deque", "dict"]
    assert call("OBJECT", "ENCODING", "missing") is None


def test_type_names(call: Call) -> None:
    call("SET", "s", [1, 2])
    call("RPUSH", "l", 1)
    call("HSET", "h", "f", 1)
    assert [call("TYPE", k) for k in ("s", "l", "h", "x")] == ["string", "list", "hash", "none"]


def _scan_all(call: Call, *options: object) -> list[object]:
    cursor, seen = 0, []
    while True:
        cursor, keys = call("SCAN", cursor, *options)
        seen += keys
        if cursor == 0:
            return seen


def test_scan_returns_every_key_once_with_filters(call: Call) -> None:
    call("MSET", *[x for i in range(50) for x in (f"s{i}", i)])
    call("RPUSH", "list1", 1)
    call("HSET", b"hash1", "f", 1)
    assert sorted(map(str, _scan_all(call))) == sorted(
        [f"s{i}" for i in range(50)] + ["list1", "b'hash1'"])
    assert sorted(_scan_all(call, "MATCH", "s1*", "COUNT", 7)) == sorted(
        ["s1"] + [f"s1{i}" for i in range(10)])
    assert _scan_all(call, "TYPE", "list") == ["list1"]
    assert _scan_all(call, "TYPE", "HASH") == [b"hash1"]
    assert _scan_all(call, "TYPE", "nosuchtype") == []


def test_scan_survives_concurrent_writes(call: Call) -> None:
    call("MSET", *[x for i in range(100) for x in (f"k{i}", i)])
    cursor, seen = call("SCAN", 0, "COUNT", 5)
    call("DEL", *[f"k{i}" for i in range(90, 100)])
    step = 0
    while cursor != 0:
        call("SET", f"new{step}", step)
        call("DEL", f"new{step - 1}")
        cursor, keys = call("SCAN", cursor, "COUNT", 5)
        seen += keys
        step += 1
    assert len(seen) == len(set(seen)), "no key twice"
    assert {f"k{i}" for i in range(90)} <= set(seen), "every key that existed throughout"
    assert not {f"k{i}" for i in range(90, 100)} & set(seen), "deleted keys are skipped"


def test_scan_errors(call: Call) -> None:
    with pytest.raises(NoKeyError):
        call("SCAN", 12345)
    with pytest.raises(ServerError, match="syntax"):
        call("SCAN", 0, "COUNT", 0)
    with pytest.raises(ServerError, match="syntax"):
        call("SCAN", 0, "LIMIT", 3)
    assert call("SCAN", 0) == [0, []]
