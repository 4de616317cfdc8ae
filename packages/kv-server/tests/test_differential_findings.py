"""Regressions for mismatches with Redis that the differential tests found.

tests-integration/test_differential_redis.py runs random commands against kv-server
and redis-server; each test here pins one fixed difference, as Redis 7.0 answers it.
"""

import pytest

from kv_protocol.errors import NotIntegerError, OutOfRangeError, WrongTypeError
from server_helpers import Call


def test_hincrby_checks_the_increment_before_the_key_type(call: Call) -> None:
    # Redis parses the increment first: "value is not an integer or out of range",
    # even when the key is not a hash.
    call("SET", "s", "text")
    with pytest.raises(NotIntegerError):
        call("HINCRBY", "s", "f", -(2**63) - 1)
    with pytest.raises(NotIntegerError):
        call("HINCRBY", "missing", "f", 2**64)
    assert call("EXISTS", "missing") == 0
    with pytest.raises(WrongTypeError):
        call("HINCRBY", "s", "f", 1)


def test_getex_checks_the_time_only_for_an_existing_string(call: Call) -> None:
    # Redis answers null for a missing key and WRONGTYPE for a list before it looks
    # at the time; only a string key gets "invalid expire time".
    assert call("GETEX", "missing", "EX", 0) is None
    call("RPUSH", "l", "a")
    with pytest.raises(WrongTypeError):
        call("GETEX", "l", "PX", -1)
    call("SET", "s", "v")
    with pytest.raises(OutOfRangeError):
        call("GETEX", "s", "EX", 0)
    assert call("TTL", "s") == -1
