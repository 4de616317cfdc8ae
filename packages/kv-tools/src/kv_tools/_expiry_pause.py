"""The expiry benchmark: do a million keys that expire together stall other clients?

It loads N keys that share one deadline (the worst case for active expiry: all of
them are due in the same moment), then runs a PING loop on another connection
from two seconds before the deadline until the server holds no keys. The longest
PING round trip during the expiry, beside the longest in the quiet seconds
before it, is the pause that active expiry causes; the time from the deadline to
the last of them gone says how fast memory comes back.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Final

from ._direct import DirectConnection, figure

BATCH: Final = 2000
LOAD_RATE: Final = 50_000
"""Keys per second the deadline allows for loading (kv loads 120k/s on a 2-core machine)."""
QUIET_S: Final = 2.0
DRAIN_LIMIT_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    keys: int
    load_s: float
    quiet_max_ms: float
    quiet_p99_ms: float
    expiry_max_ms: float
    expiry_p99_ms: float
    expiry_p50_ms: float
    pings_during_expiry: int
    drain_s: float
    rss_before: int
    rss_after: int

    def render(self) -> str:
        return "\n".join([
            f"keys loaded          {self.keys:,} in {self.load_s:.1f} s (one shared deadline)",
            f"PING before deadline max {self.quiet_max_ms:.2f} ms, p99 {self.quiet_p99_ms:.2f} ms",
            (f"PING during expiry   max {self.expiry_max_ms:.2f} ms, p99 {self.expiry_p99_ms:.2f} ms, "
            f"p50 {self.expiry_p50_ms:.3f} ms ({self.pings_during_expiry:,} pings)"),
            f"deadline -> all gone {self.drain_s:.2f} s",
            (f"server RSS           {self.rss_before / 2**20:.0f} MiB loaded, "
            f"{self.rss_after / 2**20:.0f} MiB after expiry"),
        ])


class _Connection(DirectConnection):
    def expiring(self) -> int:
        """Keys with a deadline (INFO keyspace), whether other keys exist or not."""
        return int(figure(self.info("keyspace"), "expires"))

    def rss(self) -> int:
        return int(figure(self.info("memory"), "used_memory_rss"))


def measure_expiry(host: str, port: int, password: str, keys: int) -> ExpiryReport:
    loader = _Connection(host, port, password, name="kv-bench-expiry")
    try:
        pinger = _Connection(host, port, password, name="kv-bench-expiry")
        try:
            return _measure(loader, pinger, keys)
        finally:
            pinger.close()
    finally:
        loader.close()


def _measure(loader: _Connection, pinger: _Connection, keys: int) -> ExpiryReport:
    before = loader.expiring()
    budget_s = max(QUIET_S + 1, keys / LOAD_RATE)
    started = time.monotonic()
    deadline_ms = time.time_ns() // 1_000_000 + int(budget_s * 1000)
    for first in range(0, keys, BATCH):
        numbers = range(first, min(first + BATCH, keys))
        loader.send(*[["SET", f"ttl:{n:012d}", "abc", "PXAT", deadline_ms] for n in numbers])
        loader.replies(len(numbers))
    load_s = time.monotonic() - started
    if load_s > budget_s - QUIET_S:
        raise RuntimeError(f"loading took {load_s:.1f} s, too close to the keys' deadline "
                           f"({budget_s:.1f} s): the server is too slow for this benchmark")
    rss_before = loader.rss()
    # Wait for the deadline, then watch a PING loop around it.
    deadline = started + budget_s
    time.sleep(max(deadline - QUIET_S - time.monotonic(), 0))
    quiet: list[float] = []
    during: list[float] = []
    drained_at = deadline
    last_check = 0.0
    while True:
        sent = time.perf_counter()
        pinger.call("PING")
        now = time.perf_counter()
        (during if time.monotonic() >= deadline else quiet).append(now - sent)
        if time.monotonic() >= deadline and now - last_check > 0.02:
            last_check = now
            if pinger.expiring() <= before:
                drained_at = time.monotonic()
                break
            if time.monotonic() > deadline + DRAIN_LIMIT_S:
                raise RuntimeError(f"keys still present {DRAIN_LIMIT_S} s after their deadline")
    ms = [x * 1000 for x in during]
    quiet_ms = [x * 1000 for x in quiet]
    return ExpiryReport(
        keys=keys, load_s=load_s,
        quiet_max_ms=max(quiet_ms), quiet_p99_ms=_p99(quiet_ms),
        expiry_max_ms=max(ms), expiry_p99_ms=_p99(ms), expiry_p50_ms=statistics.median(ms),
        pings_during_expiry=len(ms), drain_s=drained_at - deadline,
        rss_before=rss_before, rss_after=loader.rss(),
    )


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]
