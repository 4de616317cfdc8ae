"""``kv-bench``: load kv-server (and redis-server, and the reference server) the same way.

Like redis-benchmark: ``-c`` connections spread over ``--procs`` processes, ``-n``
requests, ``-P`` commands per batch, ``-t`` tests (all by default), ``-d`` value
size, ``-r`` keyspace. A server that lacks a test's command (the reference server
knows only SET and GET) skips it and shows "-".
With ``--redis HOST:PORT`` (and ``--reference HOST:PORT``) the same workload runs
against those servers in the same run, interleaved run by run, and the table shows
the ratios, which are what is comparable on a shared, noisy machine. Figures are
medians over ``--repeat`` runs. When a server is local its CPU time per request is
read from /proc (the fairest figure on two shared cores). ``--json`` prints the
same medians as JSON, for scripts (``nox -s bench_fsync`` builds its table so).

Two modes replace the tests: ``--expiry KEYS`` (``_expiry_pause``) measures PING
round trips while keys expire on the server named by ``-h``/``-p``, and
``--persistence KEYS`` (``_persistence_figures``) starts its own kv-servers to
measure the BGSAVE stall, snapshot loading and AOF replay.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import socket
import statistics
import sys
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kv_client import Client

from ._expiry_pause import measure_expiry
from ._loadgen import Job, WorkerResult, prepare, run_worker
from ._persistence_figures import measure_persistence
from ._wire import TESTS, KvWire, ReferenceWire, RespWire, Wire

WORKER_START_TIMEOUT_S = 120.0  # spawning a process and its connections on a loaded machine
WORKER_GRACE_S = 120.0  # past --seconds, for the last round and the results to arrive


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    wire: Wire
    pid: int | None


@dataclass(frozen=True, slots=True)
class Measurement:
    requests_per_s: float
    p50_us: float
    p99_us: float
    cpu_us_per_request: float | None


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _proc_cpu_s(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _local(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost")


def _redis_pid(host: str, port: int) -> int | None:
    if not _local(host):
        return None
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(RespWire(host, port).encode(["INFO", "server"]))
        data = b""
        while b"process_id:" not in data or not data.endswith(b"\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


def _worker_main(job: Job, ready: Any, go: Any, results: Any) -> None:
    try:
        results.put(run_worker(job, ready, go))
    except Exception as exc:  # reported by the parent, which would otherwise wait for its timeout
        message = f"{exc}" if isinstance(exc, RuntimeError) else f"{job.test.name}: {exc!r}"
        ready.put(message)  # whichever of the two the parent is waiting on
        results.put(message)


def _get(source: Any, timeout: float) -> Any:
    """The next item a worker sent; a worker's error message becomes a RuntimeError."""
    try:
        item = source.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(f"a load process sent nothing within {timeout:.0f} s") from None
    if isinstance(item, str):
        raise RuntimeError(item)
    return item


def measure(target: Target, args: argparse.Namespace, test_name: str, run: int) -> Measurement:
    """One run of one test against one server."""
    test = TESTS[test_name]
    value = b"x" * args.data_size
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    per_proc = [args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)]
    jobs = [
        Job(target.wire, test, n, args.pipeline, args.requests * n // args.clients, args.seconds,
            args.keyspace, value, seed=1000 * run + i)
        for i, n in enumerate(per_proc) if n
    ]
    procs = [context.Process(target=_worker_main, args=(job, ready, go, results)) for job in jobs]
    for proc in procs:
        proc.start()
    failed = True
    try:
        for _ in procs:
            _get(ready, WORKER_START_TIMEOUT_S)
        cpu_before = _proc_cpu_s(target.pid)
        go.set()
        done: list[WorkerResult] = [_get(results, args.seconds + WORKER_GRACE_S) for _ in procs]
        cpu_after = _proc_cpu_s(target.pid)
        failed = False
    finally:
        for proc in procs:
            if failed:  # the others would wait for "go", then load a server for nothing
                proc.kill()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    requests = sum(r.requests for r in done)
    wall = max(r.finished for r in done) - min(r.started for r in done)
    latencies = array("d")
    for r in done:
        latencies.frombytes(r.latencies_us)
    ordered = sorted(latencies)
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) / requests * 1e6
    return Measurement(requests / wall, _percentile(ordered, 0.50), _percentile(ordered, 0.99), cpu)


def _percentile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _median(values: Sequence[float | None]) -> float | None:
    """The median of the figures present; None when no run had the figure."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kv-bench", add_help=False,
        description="Benchmark kv-server, optionally side by side with redis-server.")
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-h", dest="host", default="127.0.0.1", help="kv-server host (127.0.0.1)")
    parser.add_argument("-p", dest="port", type=int, default=6378, help="kv-server port (6378)")
    parser.add_argument("-a", dest="password", default=os.environ.get("KV_PASS"),
                        help="kv-server password (default: $KV_PASS)")
    parser.add_argument("-c", dest="clients", type=int, default=50, help="connections (50)")
    parser.add_argument("-n", dest="requests", type=int, default=200_000,
                        help="requests per test and server (200000)")
    parser.add_argument("-P", dest="pipeline", type=int, default=1, help="commands per batch (1)")
    parser.add_argument("-t", dest="tests", default=",".join(TESTS),
                        help=f"comma-separated tests (all): {', '.join(TESTS)}")
    parser.add_argument("-d", dest="data_size", type=int, default=3, help="value size in bytes (3)")
    parser.add_argument("-r", dest="keyspace", type=int, default=10_000,
                        help="random keys drawn from this many (10000)")
    parser.add_argument("--procs", type=int, default=2, help="load-generating processes (2)")
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="stop each run after this long even if -n is not reached (30)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; medians (1)")
    parser.add_argument("--redis", metavar="HOST:PORT", help="also run against this redis-server")
    parser.add_argument("--reference", metavar="HOST:PORT",
                        help="also run against the reference server of ../shared/bench")
    parser.add_argument("--reference-pid", type=int, help="its process id, for CPU per request")
    parser.add_argument("--json", action="store_true",
                        help="print the medians as JSON instead of the table")
    parser.add_argument("--expiry", metavar="KEYS", type=int,
                        help="instead of the tests: load KEYS keys that share one deadline and "
                             "measure PING round trips while the server expires them")
    parser.add_argument("--persistence", metavar="KEYS", type=int,
                        help="instead of the tests: start kv-servers of this Python on 127.0.0.1 "
                             "(-h, -p and -a are not used) and measure, on KEYS string keys, the "
                             "PING stall during BGSAVE, snapshot loading in both formats and AOF "
                             "replay")
    parser.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="everysec",
                        help="the --appendfsync of the servers --persistence starts (everysec)")
    parser.add_argument("--dir", metavar="DIR", type=Path,
                        help="where --persistence makes its temporary directory, i.e. the disk "
                             "it measures (default: the system's temporary directory)")
    return parser


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    unknown = [t for t in args.tests.split(",") if t not in TESTS]
    if unknown:
        parser.error(f"unknown tests {unknown}; known: {', '.join(TESTS)}")
    for name in ("clients", "requests", "pipeline", "keyspace", "procs", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"{name} must be at least 1")
    if args.expiry is not None and args.expiry < 1:
        parser.error("--expiry needs at least 1 key")
    if args.persistence is not None:
        if args.persistence < 1:
            parser.error("--persistence needs at least 1 key")
        if args.expiry is not None:
            parser.error("--persistence and --expiry are separate runs")
        return  # it starts its own servers, with their own password
    if args.data_size < 0 or args.seconds <= 0:
        parser.error("value size must be >= 0 and seconds > 0")
    if not args.password:
        parser.error("no password: give -a or set KV_PASS")
    args.procs = min(args.procs, args.clients)


def targets(args: argparse.Namespace) -> list[Target]:
    with Client(args.host, args.port, password=args.password, name="kv-bench") as kv:
        kv_pid = kv.info("server")["server"]["process_id"] if _local(args.host) else None
    found = [Target("kv", KvWire(args.host, args.port, args.password), kv_pid)]
    if args.redis:
        host, port = _host_port(args.redis)
        found.append(Target("redis", RespWire(host, port), _redis_pid(host, port)))
    if args.reference:
        host, port = _host_port(args.reference)
        found.append(Target("reference", ReferenceWire(host, port), args.reference_pid))
    return found


def _fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summarize(runs: Sequence[Measurement]) -> Measurement:
    """The median of each figure over several runs."""
    return Measurement(
        statistics.median(m.requests_per_s for m in runs),
        statistics.median(m.p50_us for m in runs),
        statistics.median(m.p99_us for m in runs),
        _median([m.cpu_us_per_request for m in runs]),
    )


def _ratio(kv: float | None, other: Measurement | None) -> str:
    return "-" if kv is None or other is None else f"{kv / other.requests_per_s:.2f}x"


def report(args: argparse.Namespace, results: dict[tuple[str, str], list[Measurement]]) -> str:
    """The table: one row per test and server, ratios on kv's rows."""
    lines = [
        (f"kv-bench: {args.clients} connections over {args.procs} processes, "
         f"pipeline {args.pipeline}, {args.data_size}-byte values, {args.keyspace} keys, "
         f"median of {args.repeat} run(s)"),
        "",
        (f"{'test':6} {'server':10} {'requests/s':>12} {'p50 us':>9} {'p99 us':>9} "
         f"{'cpu us/req':>11} {'kv/redis':>9} {'kv/ref':>7}"),
    ]
    labels = [label for label in ("kv", "redis", "reference") if any(key[1] == label for key in results)]
    for test in args.tests.split(","):
        medians = {label: summarize(results[(test, label)]) for label in labels if (test, label) in results}
        kv = medians["kv"].requests_per_s if "kv" in medians else None
        for label in labels:
            if label not in medians:  # the server lacks the command: skipped, not faked
                lines.append(f"{test:6} {label:10} {'-':>12} {'-':>9} {'-':>9} {'-':>11}")
                continue
            m = medians[label]
            ratios = [_ratio(kv, medians.get(other)) if label == "kv" and other in labels else ""
                      for other in ("redis", "reference")]
            lines.append(
                f"{test:6} {label:10} {_fmt(m.requests_per_s):>12} {_fmt(m.p50_us):>9} "
                f"{_fmt(m.p99_us):>9} {_fmt(m.cpu_us_per_request, 2):>11} "
                f"{ratios[0]:>9} {ratios[1]:>7}".rstrip())
    return "\n".join(lines)


def report_json(args: argparse.Namespace, results: dict[tuple[str, str], list[Measurement]]) -> str:
    """The same medians as ``report``, one object per test and server, for scripts."""
    rows = [{"test": test, "server": label, "runs": len(runs), **asdict(summarize(runs))}
            for (test, label), runs in results.items()]
    settings = {name: getattr(args, name) for name in (
        "clients", "procs", "pipeline", "data_size", "keyspace", "repeat", "requests")}
    return json.dumps({"settings": settings, "results": rows}, indent=1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    if args.expiry is not None or args.persistence is not None:
        try:
            if args.persistence is not None:
                print(measure_persistence(args.persistence, appendfsync=args.appendfsync,
                                          parent=args.dir).render())
            else:
                print(measure_expiry(args.host, args.port, args.password, args.expiry).render())
        except (OSError, RuntimeError) as exc:
            print(f"kv-bench: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        found = targets(args)
        value = b"x" * args.data_size
        # More than a run can send: -n, or one batch per connection when a process's
        # share of -n is smaller, plus the warm-up batch of each connection.
        most = args.requests + 2 * args.clients * args.pipeline
        results: dict[tuple[str, str], list[Measurement]] = {}
        for run in range(args.repeat):
            for name in args.tests.split(","):
                for target in found:
                    if not target.wire.supports(TESTS[name]):
                        continue
                    prepare(target.wire, TESTS[name], args.keyspace, value, pops=most)
                    results.setdefault((name, target.label), []).append(
                        measure(target, args, name, run))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"kv-bench: {exc}", file=sys.stderr)
        return 1
    print(report_json(args, results) if args.json else report(args, results))
    return 0
