"""Failed-handshake throttling, driven by a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_server._auth_throttle import (
    BASE_DELAY_S,
    FORGET_AFTER_S,
    MAX_DELAY_S,
    MAX_PEERS,
    UNIX_PEER,
    AuthThrottle,
    peer_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> AuthThrottle:
    return AuthThrottle(clock=clock)


def test_delay_doubles_with_each_failure_up_to_the_cap(throttle: AuthThrottle) -> None:
    delays = []
    for _ in range(10):
        delays.append(throttle.delay_s("10.0.0.1"))
        throttle.failed("10.0.0.1")
    assert delays[:4] == [0.0, BASE_DELAY_S, 2 * BASE_DELAY_S, 4 * BASE_DELAY_S]
    assert delays[-1] == MAX_DELAY_S
    assert delays == sorted(delays)


def test_endless_failures_stay_at_the_cap(throttle: AuthThrottle) -> None:
    for _ in range(5000):
        throttle.failed("10.0.0.1")
    assert throttle.delay_s("10.0.0.1") == MAX_DELAY_S


def test_peers_are_counted_apart(throttle: AuthThrottle) -> None:
    throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.1")
    assert throttle.delay_s("10.0.0.2") == 0.0
    assert throttle.tracked() == 1


def test_a_success_forgets_the_peer(throttle: AuthThrottle) -> None:
    for _ in range(5):
        throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")
    assert throttle.delay_s("10.0.0.1") == 0.0
    assert throttle.tracked() == 0
    throttle.succeeded("10.0.0.9")  # never seen: nothing to forget


def test_a_quiet_period_forgets_the_peer(throttle: AuthThrottle, clock: Clock) -> None:
    for _ in range(5):
        throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.2")
    clock.now += FORGET_AFTER_S - 1
    assert throttle.delay_s("10.0.0.1") > 0
    throttle.failed("10.0.0.2")  # the failure restarts 10.0.0.2's quiet period
    clock.now += 1
    assert throttle.tracked() == 1
    assert throttle.delay_s("10.0.0.1") == 0.0
    assert throttle.delay_s("10.0.0.2") == 2 * BASE_DELAY_S


def test_a_quiet_peer_is_forgotten_when_asked_about(throttle: AuthThrottle, clock: Clock) -> None:
    throttle.failed("10.0.0.1")
    clock.now += FORGET_AFTER_S
    assert throttle.delay_s("10.0.0.1") == 0.0
    throttle.failed("10.0.0.1")  # starts again from one failure
    assert throttle.delay_s("10.0.0.1") == BASE_DELAY_S


def test_memory_is_bounded_by_forgetting_the_oldest(clock: Clock) -> None:
    throttle = AuthThrottle(clock=clock, max_peers=100)
    throttle.failed("first")
    for n in range(1000):
        clock.now += 0.001
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
        throttle.failed("first")  # failing again keeps it among the newest
    assert throttle.tracked() == 100
    assert throttle.delay_s("first") == MAX_DELAY_S
    assert throttle.delay_s("10.0.0.0") == 0.0  # the oldest went first
    assert throttle.delay_s("10.0.3.231") == BASE_DELAY_S  # the newest stays


def test_the_default_bound_holds_against_many_addresses(throttle: AuthThrottle) -> None:
    for n in range(MAX_PEERS + 5000):
        throttle.failed(f"peer-{n}")
    assert throttle.tracked() == MAX_PEERS


@pytest.mark.parametrize(("kind", "addr", "peer"), [
    ("tcp", "192.0.2.7:51234", "192.0.2.7"),
    ("tls", "192.0.2.7:443", "192.0.2.7"),
    ("tcp", "[::1]:6000", "::1"),
    ("tcp", "[2001:db8:1:2:aaaa::5]:6000", "2001:db8:1:2::/64"),
    ("tcp", "[2001:db8:1:2:bbbb::9]:7000", "2001:db8:1:2::/64"),
    ("tcp", "[::ffff:192.0.2.7]:80", "192.0.2.7"),
    ("unix", "unix", UNIX_PEER),
    ("unix", "/run/kv.sock", UNIX_PEER),
    ("test", "peer:1", "peer"),
])
def test_peer_keys(kind: str, addr: str, peer: str) -> None:
    assert peer_of(kind, addr) == peer


@given(st.sampled_from(["tcp", "tls", "unix", "test"]), st.text(max_size=60))
def test_any_address_gives_a_key(kind: str, addr: str) -> None:
    assert isinstance(peer_of(kind, addr), str)


def test_a_throttled_peers_proofs_take_turns_and_a_long_queue_is_refused(
        throttle: AuthThrottle, clock: Clock) -> None:
    for _ in range(10):
        throttle.failed("10.0.0.1")
    assert [throttle.admit("10.0.0.1") for _ in range(3)] == [MAX_DELAY_S, 2 * MAX_DELAY_S, None]
    assert throttle.admit("10.0.0.2") == 0.0  # a clean peer is not queued
    clock.now += MAX_DELAY_S  # the first turn came
    assert throttle.admit("10.0.0.1") == 2 * MAX_DELAY_S
