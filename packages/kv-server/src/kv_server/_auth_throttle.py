"""Failed-handshake throttling: each failure makes the peer's next proof wait longer.

Rules of this module:

1. A peer is an IP address for TCP and TLS. An IPv6 address counts as its /64
   network, the block one host is usually given, so a host cannot shed its record
   by moving within it. Every Unix-socket connection shares one peer, ``"unix"``:
   the socket is mode 0600, so whoever connects runs as the server's user or root,
   and the kernel gives no address to tell them apart.
2. After ``n`` consecutive failures the peer's next proof is checked only after
   ``min(BASE_DELAY_S * 2**(n - 1), MAX_DELAY_S)``, whether it turns out right or
   wrong. Delaying only wrong proofs would tell a guesser nothing it cannot learn
   by hanging up after a moment: a prompt welcome would mean "right".
3. Proofs from a throttled peer take turns: each is checked ``delay`` after the
   previous one's turn (:meth:`AuthThrottle.admit`), so opening many connections
   does not multiply the guesses, and a peer whose queue is longer than
   ``MAX_QUEUE_S`` is refused at once, unchecked. (A peer with a clean record is
   not queued: a pool opening many connections at once is not slowed.)
4. A success with the main password forgets the peer, and so does a quiet
   ``FORGET_AFTER_S`` since its last failure. A read-only login does not: a reader
   could otherwise reset its own count between guesses at the main password.
5. At most ``max_peers`` peers are remembered; one more forgets the peer whose last
   failure is oldest. Memory stays bounded however many addresses an attacker has.
6. No I/O and no sleeping here: the connection asks for the delay and sleeps in its
   own task, so one peer's delay never holds up another connection. The clock is
   injected, for tests.
"""

from __future__ import annotations

import collections
import ipaddress
import time
from collections.abc import Callable
from typing import Final

# The second attempt of someone who mistyped waits a tenth of a second; a guesser's
# eighth and later wait the cap.
BASE_DELAY_S: Final = 0.1
# Five seconds per guess and connection is already hopeless for guessing a generated
# password, and short enough that a locked-out operator who fixes the password is not
# left waiting; it stays well within the default 10 s handshake deadline too (the
# connection extends its deadline by the delay anyway).
MAX_DELAY_S: Final = 5.0
# A peer with no failure for a minute starts afresh. Waiting this out is slower than
# guessing at the capped delay, so it is no way around the throttle.
FORGET_AFTER_S: Final = 60.0
# About 250 bytes per peer (measured): 10,000 peers cost 2.5 MB at most.
MAX_PEERS: Final = 10_000
# A throttled peer's proofs wait their turns for at most this long; more are refused
# unchecked, so a peer cannot hold many connections open in the queue.
MAX_QUEUE_S: Final = 2 * MAX_DELAY_S
# Doublings past this change nothing (the cap is reached long before); bounding the
# exponent keeps the arithmetic in floats.
_MAX_DOUBLINGS: Final = 32
UNIX_PEER: Final = "unix"


def peer_of(kind: str, addr: str) -> str:
    """The throttling key of a connection from ``addr`` (``host:port`` or ``[v6]:port``).

    Args:
        kind: the transport, ``"tcp"``, ``"tls"``, ``"unix"`` (or a test's own name).
        addr: the peer address as the server shows it in CLIENT LIST.
    """
    if kind == "unix":
        return UNIX_PEER
    host = addr[1:].partition("]")[0] if addr.startswith("[") else addr.rpartition(":")[0] or addr
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_loopback:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class AuthThrottle:
    """Consecutive handshake failures per peer, and the delay they earn (see the rules)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 max_peers: int = MAX_PEERS) -> None:
        self._clock = clock
        self._max_peers = max_peers
        # peer -> (consecutive failures, time of the last, when its last queued proof
        # is checked), oldest last failure first.
        self._peers: collections.OrderedDict[str, tuple[int, float, float]] = collections.OrderedDict()

    def delay_s(self, peer: str) -> float:
        """How long ``peer``'s next proof must wait before it is checked."""
        record = self._peers.get(peer)
        if record is None:
            return 0.0
        failures, last, _ = record
        if self._clock() - last >= FORGET_AFTER_S:
            del self._peers[peer]
            return 0.0
        return min(BASE_DELAY_S * 2.0 ** min(failures - 1, _MAX_DOUBLINGS), MAX_DELAY_S)

    def admit(self, peer: str) -> float | None:
        """Queue ``peer``'s next proof: how long it must wait, or None to refuse it now."""
        delay = self.delay_s(peer)
        if not delay:
            return 0.0
        failures, last, queued_until = self._peers[peer]
        now = self._clock()
        check_at = max(now, queued_until) + delay
        if check_at - now > MAX_QUEUE_S:
            return None
        self._peers[peer] = (failures, last, check_at)
        return check_at - now

    def failed(self, peer: str) -> None:
        """Record a wrong proof from ``peer``."""
        now = self._clock()
        self._forget_quiet(now)
        failures, _, queued_until = self._peers.pop(peer, (0, now, now))
        self._peers[peer] = (failures + 1, now, queued_until)
        while len(self._peers) > self._max_peers:
            self._peers.popitem(last=False)

    def succeeded(self, peer: str) -> None:
        """Forget ``peer``'s failures: it proved the main password."""
        self._peers.pop(peer, None)

    def tracked(self) -> int:
        """How many peers have failures that still count (INFO's ``auth_throttled_peers``)."""
        self._forget_quiet(self._clock())
        return len(self._peers)

    def _forget_quiet(self, now: float) -> None:
        peers = self._peers
        while peers:
            peer, (_, last, _) = next(iter(peers.items()))
            if now - last < FORGET_AFTER_S:
                return
            del peers[peer]
