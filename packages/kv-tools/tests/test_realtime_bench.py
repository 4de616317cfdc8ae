"""kv-bench --realtime end to end with tiny counts, its options, and the bytes it expects.

The command starts both servers itself (the redis column is "-" without
redis-server); ``test_fanout`` and ``test_queue_bench`` test the accounting of each
workload against the servers of ``conftest.realtime_servers``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from integration_helpers import redis_server_path
from kv_tools._bench import main as bench_main
from kv_tools._queue_bench import SENTINEL, item
from kv_tools._realtime import PAYLOAD_BYTES, payload, push_frame, shares
from kv_tools._sdk_bench import HOST
from kv_tools._wire import KvWire, RespWire

PUBLISHES = 300
ITEMS = 300


def test_payloads_and_items_have_one_length() -> None:
    lengths = {len(x) for x in (payload(0), payload(10**15), item(0, 0), item(999, 10**11), SENTINEL)}
    assert lengths == {PAYLOAD_BYTES}
    kv, resp = KvWire(HOST, 1, "pw"), RespWire(HOST, 1)
    for wire in (kv, resp):
        assert len(push_frame(wire, "c", payload(0))) == len(push_frame(wire, "c", payload(10**15)))
    assert push_frame(resp, "ch", b"x") == b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"
    assert shares(50, 3) == [17, 17, 16] and shares(2, 2) == [1, 1]


def test_the_command_prints_kv_beside_redis_and_counts_no_loss(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    assert bench_main(["--realtime", "--realtime-publishes", str(PUBLISHES), "--realtime-items", str(ITEMS),
                       "--realtime-queues", "2/2", "--realtime-runs", "1", "--dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("kv-bench --realtime: AOF everysec on both servers, 16-byte payloads, "
                            "median of 1 runs")
    lines = {tuple(p.strip() for p in line.strip("|").split("|")[:2]): line
             for line in table.splitlines() if line.startswith("| ")}
    with_redis = redis_server_path() is not None
    for workload, unit in (("fan-out", "delivered msg/s"), ("queue 2/2", "items/s")):
        cells = [p.strip() for p in lines[(workload, unit)].strip("|").split("|")]
        assert float(cells[2].replace(",", "")) > 0
        assert (cells[3] != "-") == with_redis and (cells[4].endswith("x")) == with_redis
        lost = [p.strip() for p in lines[(workload, "lost (all runs)")].strip("|").split("|")]
        assert lost[2:4] == (["0", "0"] if with_redis else ["0", "-"])
    assert list(tmp_path.iterdir()) == []  # the servers' directory is gone


def test_json_has_a_row_per_workload_and_server(realtime_servers: dict[str, object],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--realtime", "--realtime-publishes", "50", "--realtime-items", "50",
                       "--realtime-subscribers", "3", "--realtime-queues", "1/2", "--realtime-runs", "1",
                       "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["settings"]["subscribers"] == 3 and found["settings"]["queues"] == "1/2"
    rows = [(r["workload"], r["server"], r["lost"], len(r["per_s_runs"])) for r in found["results"]]
    labels = list(realtime_servers)  # the same servers are there
    assert rows == [(w, s, 0, 1) for w in ("fan-out", "queue 1/2") for s in labels]


def test_publishes_0_leaves_the_fan_out_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--realtime", "--realtime-publishes", "0", "--realtime-items", "20",
                       "--realtime-queues", "1/1", "--realtime-push-batch", "1", "--realtime-runs", "1",
                       "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["settings"]["push_batch"] == 1
    assert {r["workload"] for r in found["results"]} == {"queue 1/1"}


@pytest.mark.parametrize(("argv", "message"), [
    (["--realtime-queues", "0/1"], "need 1 to 999 producers"),
    (["--realtime-queues", "2"], "--realtime-queues"),
    (["--realtime-publishes", "-1"], "--realtime-publishes must be 0 (no fan-out) or more"),
    (["--realtime-push-batch", "0"], "--realtime-push-batch must be at least 1"),
    (["--csv"], "--realtime is a separate run"),
    (["--sdk"], "--realtime is a separate run"),
])
def test_bad_realtime_arguments_exit_2(argv: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--realtime", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
