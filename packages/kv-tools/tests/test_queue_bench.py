"""The RPUSH/BLPOP queue against real servers, with tiny counts: every item is popped once.

Several producers and consumers share one list; the tool counts each producer's
items and sums their sequence numbers, so a shortfall is reported as lost and a
duplicate or altered item is an error.
"""

from __future__ import annotations

import pytest

from kv_tools._queue_bench import ConsumerResult, Queue, _account, measure_queue
from kv_tools._realtime import Wire

SECONDS = 30.0  # the runs' time bound: far more than a few hundred items need
ITEMS = 300


@pytest.mark.parametrize(("producers", "consumers"), [(1, 1), (3, 2)])
def test_every_queue_item_is_popped_once(realtime_server: tuple[Wire, int | None],
                                         producers: int, consumers: int) -> None:
    wire, pid = realtime_server
    key = f"t:queue:{producers}/{consumers}"
    sample = measure_queue(wire, pid, key, Queue(producers, consumers, ITEMS, SECONDS))
    assert (sample.sent, sample.expected, sample.arrived, sample.lost) == (ITEMS, ITEMS, ITEMS, 0)
    assert sample.backlog is not None and 0 <= sample.backlog <= ITEMS
    assert sample.rate > 0 and sample.send_rate > 0


def test_consumers_waiting_in_blpop_are_served_every_item(realtime_server: tuple[Wire, int | None]) -> None:
    """One unpipelined producer, three consumers: most pops wait in BLPOP for a push."""
    wire, pid = realtime_server
    sample = measure_queue(wire, pid, "t:queue:waiting", Queue(1, 3, ITEMS, SECONDS, batch=1))
    assert (sample.sent, sample.arrived, sample.lost) == (ITEMS, ITEMS, 0)
    assert sample.backlog is not None and sample.backlog < ITEMS // 2  # the consumers kept up


def test_accounting_reports_a_shortfall_and_refuses_duplicates() -> None:
    def popped(counts: dict[int, int], sums: dict[int, int]) -> ConsumerResult:
        return ConsumerResult(counts, sums, 1.0, 0, True, 0.0)

    whole = [popped({0: 2, 1: 1}, {0: 0 + 1, 1: 0}), popped({0: 1}, {0: 2})]
    assert _account({0: 3, 1: 1}, whole) == 4
    assert _account({0: 3, 1: 2}, whole) == 4  # producer 1's second item is lost: counted, not raised
    with pytest.raises(RuntimeError, match="duplicated or altered"):
        _account({0: 3, 1: 1}, [*whole, popped({1: 1}, {1: 0})])
    with pytest.raises(RuntimeError, match="duplicated or altered"):  # right count, wrong items
        _account({0: 3}, [popped({0: 3}, {0: 0 + 1 + 1})])
    with pytest.raises(RuntimeError, match="no producer pushed"):
        _account({0: 3}, [*whole[:1], popped({0: 1, 7: 1}, {0: 2, 7: 0})])
