"""kv-bench --sdk against real servers, with tiny counts: every row is there and measured.

The figures themselves are noise at these counts; what is tested is that each client
ran (its results were checked by the tool), that the table has every row with
positive numbers, and that the comparisons are filled in where both sides ran.
"""

from __future__ import annotations

import json
import math

import pytest

from integration_helpers import redis_server_path
from kv_tools._bench import build_parser
from kv_tools._bench import main as bench_main
from kv_tools._sdk_bench import COMMANDS, DRIVERS, PIPELINE, RUNS, Sample, report_json

REQUESTS = 200  # per unpipelined run: the whole path in a few seconds; the figures are noise


def expected_rows() -> list[tuple[str, str, str]]:
    with_redis = redis_server_path() is not None
    return [(command, d.label, mode) for command in COMMANDS for mode in ("unpipelined", f"P={PIPELINE}")
            for d in DRIVERS if d.server == "kv" or with_redis]


def cells(table: str) -> dict[tuple[str, str, str], list[str]]:
    """The markdown table's body: (command, client, mode) -> the figures' cells."""
    found = {}
    for line in table.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if line.startswith("|") and parts[0] in COMMANDS:
            found[(parts[0], parts[1], parts[2])] = parts[3:]
    return found


def test_every_row_is_there_with_positive_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--sdk", "--sdk-requests", str(REQUESTS)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("kv-bench --sdk: one connection per client, 3-byte values over 10,000 random "
                            f"keys, AOF everysec on both servers; median of {RUNS} runs of 200 calls")
    rows = cells(table)
    assert list(rows) == expected_rows()
    for key, (rate, per_call, cpu, over_raw, ratio) in rows.items():
        assert float(rate.replace(",", "")) > 0 and float(per_call) > 0 and float(cpu) > 0, key
        assert (over_raw == "-") == key[1].endswith(("raw frames", "raw RESP")), key  # may be negative
        if redis_server_path() is not None:
            assert (ratio == "-") == (not key[1].startswith("kv")), key
            assert ratio == "-" or float(ratio.rstrip("x")) > 0, key


def test_json_has_the_same_rows_and_the_derived_figures() -> None:
    args = build_parser().parse_args(["--sdk", "--sdk-requests", "10"])
    results = {("SET", label, 1): [Sample(100, 0.01, 0.002)] * RUNS
               for label in ("kv Client", "kv raw frames", "redis-py Redis")}
    found = json.loads(report_json(args, results))
    assert found["settings"]["pipelined_requests"] == 50 and found["settings"]["pipeline"] == PIPELINE
    by_client = {r["client"]: r for r in found["results"]}
    assert list(by_client) == ["kv Client", "kv raw frames", "redis-py Redis"]
    client = by_client["kv Client"]
    assert math.isclose(client["requests_per_s"], 10_000) and math.isclose(client["cpu_us_per_call"], 20)
    assert math.isclose(client["over_raw_us_per_call"], 0) and math.isclose(client["vs_redis_py"], 1)
    assert by_client["kv raw frames"]["vs_redis_py"] is None  # no raw RESP row to compare with
    assert by_client["redis-py Redis"]["over_raw_us_per_call"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--sdk-requests", "0"], "--sdk-requests must be at least 1"),
    (["--csv"], "--sdk is a separate run"),
    (["--persistence", "10"], "--sdk is a separate run"),
])
def test_bad_sdk_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--sdk", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
