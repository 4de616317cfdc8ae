"""The pub/sub fan-out against real servers, with tiny counts: every message is counted.

The rates are noise at these sizes; what is tested is the accounting: each
subscriber receives every publish once (checked byte for byte by the tool), and the
time bound cuts the publisher while the subscribers agree on how many were published.
"""

from __future__ import annotations

from kv_tools._fanout import Fanout, measure_fanout
from kv_tools._realtime import Wire

SECONDS = 30.0  # the runs' time bound: far more than a few hundred messages need
PUBLISHES = 300


def test_fanout_delivers_every_publish_to_every_subscriber(
        realtime_server: tuple[Wire, int | None]) -> None:
    wire, pid = realtime_server
    sample = measure_fanout(wire, pid, "t:all", Fanout(50, PUBLISHES, 2, SECONDS, batch=16))
    assert (sample.sent, sample.expected, sample.arrived, sample.lost) == (PUBLISHES, 50 * PUBLISHES,
                                                                           50 * PUBLISHES, 0)
    # No order between the two ends: the publisher may read its last reply after the
    # subscribers got the last message, or before.
    assert sample.rate > 0 and sample.send_rate > 0 and sample.send_s > 0 and sample.wall_s > 0
    assert sample.client_cpu_s > 0 and sample.server_cpu_s is not None


def test_the_time_bound_stops_the_publisher_and_the_subscribers_agree(
        realtime_server: tuple[Wire, int | None]) -> None:
    wire, pid = realtime_server
    sample = measure_fanout(wire, pid, "t:short", Fanout(5, PUBLISHES, 1, 1e-9, batch=16))
    assert sample.sent == 16  # the deadline is looked at after each batch's replies
    assert (sample.expected, sample.arrived) == (5 * 16, 5 * 16)
