"""kv-bench's figures and their outputs: the table, CSV, JSON, and the live progress line.

Everything here is pure: measurements in, text out. One run gives a ``Measurement``;
several runs of one test against one server are summarised by the median of each
figure (``summarize``), and every output shows those medians.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Final

# The latency percentiles reported, as (field suffix, quantile): redis-benchmark's set.
PERCENTILES: Final = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))
SERVERS: Final = ("kv", "redis", "reference")  # the order of the rows of each test
SETTINGS: Final = ("clients", "procs", "pipeline", "data_size", "keyspace", "repeat", "requests",
                   "seconds", "rate")

Results = dict[tuple[str, str], list["Measurement"]]  # (test, server) -> one per run


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one test against one server.

    ``requests_per_s`` is the throughput at saturation, or with ``--rate`` the rate
    achieved. Latencies are per batch, in microseconds.
    """

    requests_per_s: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    cpu_us_per_request: float | None


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile of sorted ``ordered`` by nearest rank (the ceil(q*n)-th value); 0 when empty."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measurement(requests_per_s: float, latencies_us: Sequence[float],
                cpu_us_per_request: float | None) -> Measurement:
    """A run's figures from its throughput and every latency it saw."""
    ordered = sorted(latencies_us)
    p50, p90, p99, p999 = (percentile(ordered, q) for _, q in PERCENTILES)
    return Measurement(requests_per_s, p50, p90, p99, p999, cpu_us_per_request)


def _median(values: Sequence[float | None]) -> float | None:
    """The median of the figures present; None when no run had the figure."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(runs: Sequence[Measurement]) -> Measurement:
    """The median of each figure over several runs."""
    return Measurement(
        statistics.median(m.requests_per_s for m in runs),
        statistics.median(m.p50_us for m in runs),
        statistics.median(m.p90_us for m in runs),
        statistics.median(m.p99_us for m in runs),
        statistics.median(m.p999_us for m in runs),
        _median([m.cpu_us_per_request for m in runs]),
    )


def medians(tests: Sequence[str], results: Results) -> list[tuple[str, str, Measurement]]:
    """(test, server, medians) in table order: by test, then kv, redis, reference."""
    return [(test, label, summarize(results[(test, label)]))
            for test in tests for label in SERVERS if (test, label) in results]


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(kv: Measurement | None, other: Measurement | None) -> str:
    return "-" if kv is None or other is None else f"{kv.requests_per_s / other.requests_per_s:.2f}x"


def header(args: argparse.Namespace) -> str:
    mode = f"open loop at {args.rate:,.0f} requests/s" if args.rate else "closed loop"
    return (f"kv-bench: {args.clients} connections over {args.procs} processes, "
            f"pipeline {args.pipeline}, {args.data_size}-byte values, {args.keyspace} keys, "
            f"{mode}, median of {args.repeat} run(s)")


def report(args: argparse.Namespace, results: Results) -> str:
    """The table: one row per test and server, ratios on kv's rows."""
    rate = "achieved/s" if args.rate else "requests/s"
    lines = [
        header(args), "",
        (f"{'test':6} {'server':10} {rate:>12} {'p50 us':>9} {'p90 us':>9} {'p99 us':>9} "
         f"{'p99.9 us':>9} {'cpu us/req':>11} {'kv/redis':>9} {'kv/ref':>7}"),
    ]
    labels = [label for label in SERVERS if any(key[1] == label for key in results)]
    for test in args.tests.split(","):
        by_label = {label: m for t, label, m in medians([test], results) if t == test}
        for label in labels:
            if label not in by_label:  # the server lacks the command: skipped, not faked
                lines.append(f"{test:6} {label:10} {'-':>12} {'-':>9} {'-':>9} {'-':>9} {'-':>9} "
                             f"{'-':>11}")
                continue
            m = by_label[label]
            ratios = [_ratio(by_label.get("kv"), by_label.get(other))
                      if label == "kv" and other in labels else "" for other in ("redis", "reference")]
            lines.append(
                f"{test:6} {label:10} {_fmt(m.requests_per_s):>12} {_fmt(m.p50_us):>9} "
                f"{_fmt(m.p90_us):>9} {_fmt(m.p99_us):>9} {_fmt(m.p999_us):>9} "
                f"{_fmt(m.cpu_us_per_request, 2):>11} {ratios[0]:>9} {ratios[1]:>7}".rstrip())
    return "\n".join(lines)


def _rows(args: argparse.Namespace, results: Results) -> list[dict[str, object]]:
    return [{"test": test, "server": label, "runs": len(results[(test, label)]), **asdict(m)}
            for test, label, m in medians(args.tests.split(","), results)]


def report_json(args: argparse.Namespace, results: Results) -> str:
    """The same medians as ``report``, one object per test and server, for scripts."""
    settings = {name: getattr(args, name) for name in SETTINGS}
    return json.dumps({"settings": settings, "results": _rows(args, results)}, indent=1)


def report_csv(args: argparse.Namespace, results: Results) -> str:
    """The same medians as CSV: a header row, then one row per test and server.

    The settings are columns too, so that the CSV of several runs can be concatenated
    (header rows aside) into one sheet.
    """
    out = io.StringIO()
    names = ["test", "server", "runs", *(f.name for f in fields(Measurement)), *SETTINGS]
    writer = csv.DictWriter(out, names, lineterminator="\n")
    writer.writeheader()
    settings = {name: getattr(args, name) for name in SETTINGS}
    for row in _rows(args, results):
        writer.writerow({**row, **settings})
    return out.getvalue().rstrip("\n")


def progress_line(test: str, label: str, run: int, done: int, total: int, elapsed_s: float) -> str:
    """The live line on stderr: where the run is, and its rate so far."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    share = min(100.0, 100.0 * done / total) if total else 0.0
    return f"{test} {label} run {run + 1}: {done:,}/{total:,} requests ({share:3.0f}%), {rate:,.0f}/s"
