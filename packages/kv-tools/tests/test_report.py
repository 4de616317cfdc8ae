import argparse
import csv
import io
import json

import pytest

from kv_tools._bench import build_parser
from kv_tools._report import (
    Measurement,
    measurement,
    percentile,
    progress_line,
    report,
    report_csv,
    report_json,
    summarize,
)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["-a", "pw", *argv])


def m(rate: float, p50: float, p99: float, cpu: float | None = None) -> Measurement:
    return Measurement(rate, p50, p50 + 1, p99, p99 + 1, cpu)


def test_percentiles_take_the_nearest_rank() -> None:
    ordered = [float(n) for n in range(1, 1001)]  # 1 .. 1000
    assert [percentile(ordered, q) for q in (0.5, 0.9, 0.99, 0.999)] == [500, 900, 990, 999]
    assert percentile([1.0, 2.0], 0.5) == 1.0 and percentile([1.0, 2.0], 0.51) == 2.0
    assert percentile([7.0], 0.999) == 7.0
    assert percentile([], 0.5) == 0.0


def test_a_measurement_sorts_its_latencies() -> None:
    latencies = [float(n) for n in range(1000, 0, -1)]
    assert measurement(50.0, latencies, None) == Measurement(50.0, 500, 900, 990, 999, None)


def test_slow_batches_beyond_the_999th_in_a_thousand_show_only_at_p999() -> None:
    latencies = [100.0] * 998 + [50_000.0] * 2
    got = measurement(1.0, latencies, 2.0)
    assert (got.p50_us, got.p90_us, got.p99_us, got.p999_us) == (100, 100, 100, 50_000)


def test_summary_takes_medians_and_keeps_missing_cpu_missing() -> None:
    runs = [m(100, 5, 9), m(300, 1, 7), m(200, 3, 8)]
    assert summarize(runs) == Measurement(200, 3, 4, 8, 9, None)


def test_report_shows_every_percentile_and_ratios_on_kv_rows() -> None:
    table = report(parse("-t", "set"), {("set", "kv"): [m(60_000, 500, 900, 12.0)],
                                         ("set", "redis"): [m(100_000, 300, 600, 6.0)],
                                         ("set", "reference"): [m(75_000, 400, 800)]})
    assert "p90 us" in table and "p99.9 us" in table and "closed loop" in table
    kv_row = next(line for line in table.splitlines() if line.startswith("set    kv "))
    assert kv_row.split()[2:] == ["60,000", "500", "501", "900", "901", "12.00", "0.60x", "0.80x"]
    assert "reference" in table and "-" in table.splitlines()[-1]


def test_report_shows_dashes_for_a_test_a_server_lacks() -> None:
    table = report(parse("-t", "set,lpush"), {("set", "kv"): [m(60_000, 500, 900, 12.0)],
                                               ("set", "reference"): [m(75_000, 400, 800, 11.0)],
                                               ("lpush", "kv"): [m(50_000, 500, 900, 14.0)]})
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in table.splitlines()[3:]}
    assert rows[("lpush", "reference")] == ["-"] * 6
    assert rows[("lpush", "kv")] == ["50,000", "500", "501", "900", "901", "14.00", "-"]
    assert rows[("set", "kv")][-1] == "0.80x"


def test_open_loop_report_says_so_and_shows_the_achieved_rate() -> None:
    table = report(parse("-t", "get", "--rate", "5000"), {("get", "kv"): [m(4_990, 80, 200)]})
    assert "open loop at 5,000 requests/s" in table and "achieved/s" in table


def test_json_report_has_the_same_medians() -> None:
    args = parse("-t", "set", "--json", "-P", "16", "--repeat", "2")
    data = json.loads(report_json(args, {
        ("set", "kv"): [m(60_000, 500, 900, 12.0), m(80_000, 300, 700)],
        ("set", "redis"): [m(100_000, 300, 600)]}))
    assert data["settings"]["pipeline"] == 16 and data["settings"]["repeat"] == 2
    assert data["settings"]["rate"] is None
    assert data["results"] == [
        {"test": "set", "server": "kv", "runs": 2, "requests_per_s": 70_000, "p50_us": 400,
         "p90_us": 401, "p99_us": 800, "p999_us": 801, "cpu_us_per_request": 12.0},
        {"test": "set", "server": "redis", "runs": 1, "requests_per_s": 100_000, "p50_us": 300,
         "p90_us": 301, "p99_us": 600, "p999_us": 601, "cpu_us_per_request": None},
    ]


def test_csv_report_has_a_header_and_one_row_per_test_and_server() -> None:
    args = parse("-t", "get,set", "--csv", "--rate", "1000")
    text = report_csv(args, {("set", "kv"): [m(60_000, 500, 900, 12.0)],
                             ("get", "redis"): [m(100_000, 300, 600)],
                             ("get", "kv"): [m(50_000, 400, 700)]})
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0].startswith(
        "test,server,runs,requests_per_s,p50_us,p90_us,p99_us,p999_us,cpu_us_per_request,clients")
    assert [(row["test"], row["server"]) for row in rows] == [("get", "kv"), ("get", "redis"),
                                                              ("set", "kv")]
    assert rows[2]["requests_per_s"] == "60000" and rows[2]["p999_us"] == "901"
    assert rows[1]["cpu_us_per_request"] == "" and rows[0]["rate"] == "1000.0"


@pytest.mark.parametrize(("done", "share"), [(0, "  0%"), (500, " 50%"), (2_000, "100%")])
def test_progress_line(done: int, share: str) -> None:
    line = progress_line("get", "kv", 0, done, 1_000, 2.0)
    assert line.startswith(f"get kv run 1: {done:,}/1,000 requests ({share})")
    assert line.endswith(f"{done / 2:,.0f}/s")
