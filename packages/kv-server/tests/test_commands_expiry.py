"""Expiry through the dispatcher, on a fake clock (the ``clock`` fixture)."""

import pytest

from conftest import FakeClock
from kv_protocol.errors import NotIntegerError, OutOfRangeError, ServerError
from kv_server._expiry import BUCKET_BITS
from kv_server._state import ServerState
from server_helpers import Call

NOW = 1_700_000_000_000


def test_ttl_and_lazy_expiry(call: Call, clock: FakeClock) -> None:
    call("SET", "k", "v", "EX", 10)
    assert call("TTL", "k") == 10 and call("PTTL", "k") == 10_000
    assert call("EXPIRETIME", "k") == NOW // 1000 + 10
    assert call("PEXPIRETIME", "k") == NOW + 10_000
    clock.advance(9_499)
    assert call("TTL", "k") == 1, "rounded to the nearest second, as Redis"
    clock.advance(501)
    assert call("GET", "k") is None and call("EXISTS", "k") == 0
    assert call("TTL", "k") == -2 and call("PTTL", "k") == -2 and call("EXPIRETIME", "k") == -2


def test_keys_without_ttl_are_untouched_by_expiring_neighbours(call: Call, clock: FakeClock) -> None:
    # crowRedis broke plain GETs once a key with a TTL existed.
    call("SET", "plain", 1)
    call("SET", "short", 2, "PX", 5)
    call("SET", "long", 3, "EX", 100)
    call("SET", "plain2", 4)
    assert call("MGET", "plain", "short", "long", "plain2") == [1, 2, 3, 4]
    clock.advance(10)
    assert call("MGET", "plain", "short", "long", "plain2") == [1, None, 3, 4]
    assert call("TTL", "plain") == -1 and call("DBSIZE") == 3
    assert sorted(call("KEYS", "*")) == ["long", "plain", "plain2"]


def test_expire_conditions(call: Call, clock: FakeClock) -> None:
    call("SET", "k", 1)
    assert call("EXPIRE", "k", 100, "XX") == 0
    assert call("EXPIRE", "k", 100, "GT") == 0, "no TTL counts as infinite"
    assert call("EXPIRE", "k", 100, "NX") == 1
    assert call("EXPIRE", "k", 200, "NX") == 0
    assert call("EXPIRE", "k", 50, "GT") == 0 and call("EXPIRE", "k", 150, "GT") == 1
    assert call("EXPIRE", "k", 200, "LT") == 0 and call("EXPIRE", "k", 20, "LT") == 1
    assert call("TTL", "k") == 20
    assert call("PEXPIRE", "k", 5000, "xx") == 1 and call("PTTL", "k") == 5000
    assert call("EXPIRE", "missing", 10) == 0
    with pytest.raises(ServerError):
        call("EXPIRE", "k", 10, "SOON")


def test_absolute_times_and_the_past(call: Call, clock: FakeClock) -> None:
    call("SET", "k", 1)
    assert call("EXPIREAT", "k", NOW // 1000 + 60) == 1
    assert call("TTL", "k") == 60
    assert call("PEXPIREAT", "k", NOW + 1) == 1 and call("PTTL", "k") == 1
    assert call("EXPIRE", "k", -1) == 1
    assert call("EXISTS", "k") == 0, "a time in the past deletes"
    call("SET", "k", 1)
    assert call("PEXPIREAT", "k", 0) == 1 and call("EXISTS", "k") == 0


def test_persist(call: Call, clock: FakeClock) -> None:
    call("SET", "k", 1, "EX", 5)
    assert call("PERSIST", "k") == 1 and call("PERSIST", "k") == 0
    assert call("TTL", "k") == -1 and call("PERSIST", "missing") == 0
    clock.advance(10_000)
    assert call("GET", "k") == 1


def test_writes_clear_or_keep_the_ttl_as_redis(call: Call, clock: FakeClock) -> None:
    def ttl_after(*argv: object) -> int:
        call("DEL", "k")
        call("SET", "k", "v", "EX", 100)
        call(*argv)
        return int(call("TTL", "k"))

    assert ttl_after("SET", "k", "w") == -1
    assert ttl_after("GETSET", "k", "w") == -1
    assert ttl_after("MSET", "k", "w") == -1
    assert ttl_after("SET", "k", "w", "KEEPTTL") == 100
    assert ttl_after("APPEND", "k", "w") == 100
    assert ttl_after("SETRANGE", "k", 0, "x") == 100
    assert ttl_after("GETEX", "k", "PERSIST") == -1
    assert ttl_after("GETEX", "k", "EX", 7) == 7
    assert ttl_after("GETEX", "k") == 100
    call("DEL", "l")
    call("RPUSH", "l", 1)
    call("EXPIRE", "l", 100)
    call("RPUSH", "l", 2)
    call("LPOP", "l")
    assert call("TTL", "l") == 100


def test_set_options(call: Call, clock: FakeClock) -> None:
    assert call("SET", "k", 1, "NX") == "OK"
    assert call("SET", "k", 2, "NX") is None
    assert call("SET", "k", 3, "XX", "GET") == 1
    assert call("SET", "new", 3, "XX") is None and call("EXISTS", "new") == 0
    assert call("SET", "new", 4, "NX", "GET") is None and call("GET", "new") == 4
    assert call("SET", "k", 5, "PXAT", NOW + 1500) == "OK" and call("PTTL", "k") == 1500
    assert call("SET", "k", 6, "EXAT", NOW // 1000 - 1) == "OK"
    assert call("EXISTS", "k") == 0
    for bad in (("EX", 0), ("PX", -5), ("EX", 2**62)):
        with pytest.raises(OutOfRangeError):
            call("SET", "k", 1, *bad)
    with pytest.raises(NotIntegerError):
        call("SET", "k", 1, "EX", 2**63)
    for bad in (("NX", "XX"), ("EX", 1, "PX", 1), ("EX", 1, "KEEPTTL"), ("GET", "GET"),
                ("EX",), ("SOON",)):
        with pytest.raises(ServerError, match="syntax"):
            call("SET", "k", 1, *bad)
    with pytest.raises(ServerError):
        call("SET", "k", 1, "EX", "10")


def test_set_get_on_a_list_changes_nothing(call: Call) -> None:
    call("RPUSH", "l", 1)
    with pytest.raises(ServerError, match="WRONGTYPE"):
        call("SET", "l", 1, "GET")
    assert call("LRANGE", "l", 0, -1) == [1]


def test_setex_and_psetex(call: Call, clock: FakeClock) -> None:
    assert call("SETEX", "k", 10, "v") == "OK" and call("TTL", "k") == 10
    assert call("PSETEX", "k", 1500, "v") == "OK" and call("PTTL", "k") == 1500
    for argv in (("SETEX", "k", 0, "v"), ("PSETEX", "k", -1, "v")):
        with pytest.raises(OutOfRangeError):
            call(*argv)


def test_rename_moves_the_ttl_and_copy_copies_it(call: Call, clock: FakeClock) -> None:
    call("SET", "a", 1, "EX", 50)
    call("SET", "b", 2, "EX", 10)
    call("RENAME", "a", "b")
    assert call("TTL", "b") == 50 and call("EXISTS", "a") == 0
    assert call("COPY", "b", "c") == 1 and call("TTL", "c") == 50
    call("SET", "d", 4)
    call("RENAME", "d", "c")
    assert call("TTL", "c") == -1


def test_active_expiry_reclaims_keys_nobody_reads(call: Call, clock: FakeClock,
                                                  state: ServerState) -> None:
    keyspace = state.keyspace
    for i in range(1000):
        call("SET", f"k{i}", i, "PX", 100 + i)
    call("SET", "keep", 1, "EX", 3600)
    clock.advance(100 + 1000 + (1 << BUCKET_BITS))
    while keyspace.expire_due(0.001):
        pass
    assert len(keyspace) == 1 and keyspace.expired == 1000
    assert list(keyspace.expires) == ["keep"] and len(keyspace.buckets) == 1
