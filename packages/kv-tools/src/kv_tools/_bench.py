"""``kv-bench``: load kv-server (and redis-server, and the reference server) the same way.

Like redis-benchmark: ``-c`` connections spread over ``--procs`` processes, ``-n``
requests, ``-P`` commands per batch, ``-t`` tests (all by default), ``-d`` value
size, ``-r`` keyspace. A server that lacks a test's command (the reference server
knows only SET and GET) skips it and shows "-".
With ``--redis HOST:PORT`` (and ``--reference HOST:PORT``) the same workload runs
against those servers in the same run, interleaved run by run, and the table shows
the ratios, which are what is comparable on a shared, noisy machine. Figures are
medians over ``--repeat`` runs: requests/s, latency percentiles p50, p90, p99 and
p99.9 per batch, and, when a server is local, its CPU time per request read from
/proc (the fairest figure on two shared cores). ``--json`` and ``--csv`` print the
same medians for scripts (``nox -s bench_fsync`` builds its table from the JSON),
and ``--plot FILE.png`` draws them (``_plot``; matplotlib is the ``plot`` extra).
On a terminal, stderr shows one live progress line per run.

By default each connection sends its next batch when the last one's replies are in
(a closed loop, which measures saturation). ``--rate R`` sends R requests/s at fixed
times instead and measures latency from those times (``_openloop``).

Three modes replace the tests: ``--expiry KEYS`` (``_expiry_pause``) measures PING
round trips while keys expire on the server named by ``-h``/``-p``,
``--persistence KEYS`` (``_persistence_figures``) starts its own kv-servers to
measure the BGSAVE stall, snapshot loading and AOF replay, ``--sdk``
(``_sdk_bench``) starts kv-server and redis-server to measure the Python SDK's
throughput and per-call overhead beside redis-py's, and ``--realtime``
(``_realtime_bench``) starts both to measure pub/sub fan-out and a BLPOP queue.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kv_client import Client

from ._expiry_pause import measure_expiry
from ._loadgen import Job, WorkerResult, prepare, run_worker
from ._persistence_figures import measure_persistence
from ._plot import PlotUnavailableError, load_pyplot, plot
from ._realtime_bench import add_arguments as add_realtime_arguments
from ._realtime_bench import check as check_realtime
from ._realtime_bench import main as realtime_main
from ._report import Measurement, Results, header, measurement, progress_line, report, report_csv
from ._report import report_json as report_json
from ._report import summarize as summarize
from ._sdk_bench import main as sdk_main
from ._server_process import is_local, proc_cpu_s, redis_pid
from ._wire import TESTS, KvWire, ReferenceWire, RespWire, Wire

WORKER_START_TIMEOUT_S = 120.0  # spawning a process and its connections on a loaded machine
WORKER_GRACE_S = 120.0  # past --seconds, for the last round and the results to arrive
PROGRESS_INTERVAL_S = 0.25  # the live line's refresh: smooth, yet no load on the parent


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    wire: Wire
    pid: int | None


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _worker_main(job: Job, ready: Any, go: Any, results: Any, done: Any, index: int) -> None:
    """One load process: its result, or its error as a string, goes back on ``results``."""
    def progress(requests: int) -> None:
        done[index] = requests

    try:
        results.put(run_worker(job, ready, go, progress))
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


def _collect(results: Any, count: int, timeout: float, live: Callable[[], None] | None) -> list[Any]:
    """``count`` workers' results; with ``live``, call it every PROGRESS_INTERVAL_S meanwhile."""
    if live is None:
        return [_get(results, timeout) for _ in range(count)]
    deadline = time.monotonic() + timeout
    done: list[Any] = []
    while len(done) < count:
        try:
            item = results.get(timeout=PROGRESS_INTERVAL_S)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise RuntimeError(f"a load process sent nothing within {timeout:.0f} s") from None
            live()
            continue
        if isinstance(item, str):
            raise RuntimeError(item)
        done.append(item)
    return done


def _jobs(target: Target, args: argparse.Namespace, test_name: str, run: int) -> list[Job]:
    """Each load process's share: connections, requests, and in open loop its rate and phase."""
    per_proc = [args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)]
    jobs = []
    for i, n in enumerate(per_proc):
        if not n:
            continue
        # Open loop: a process's rate is its share of the connections; the phases
        # spread the processes' sends evenly over one interval of the whole stream.
        rate = args.rate * n / args.clients if args.rate else 0.0
        phase = i * args.pipeline / args.rate if args.rate else 0.0
        jobs.append(Job(target.wire, TESTS[test_name], n, args.pipeline, args.requests * n // args.clients,
                        args.seconds, args.keyspace, b"x" * args.data_size, seed=1000 * run + i,
                        rate=rate, phase_s=phase))
    return jobs


def measure(target: Target, args: argparse.Namespace, test_name: str, run: int) -> Measurement:
    """One run of one test against one server; a live line on stderr when it is a TTY."""
    context = multiprocessing.get_context("spawn")
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    jobs = _jobs(target, args, test_name, run)
    counts = context.Array("q", len(jobs), lock=False)  # each worker's requests so far
    procs = [context.Process(target=_worker_main, args=(job, ready, go, results, counts, i))
             for i, job in enumerate(jobs)]
    for proc in procs:
        proc.start()
    failed = True
    live = None
    if sys.stderr.isatty():
        def live() -> None:
            line = progress_line(test_name, target.label, run, sum(counts), args.requests,
                                 time.perf_counter() - began)
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
    try:
        for _ in procs:
            _get(ready, WORKER_START_TIMEOUT_S)
        cpu_before = proc_cpu_s(target.pid)
        began = time.perf_counter()
        go.set()
        done: list[WorkerResult] = _collect(results, len(procs), args.seconds + WORKER_GRACE_S, live)
        cpu_after = proc_cpu_s(target.pid)
        failed = False
    finally:
        if live is not None:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
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
    cpu = None
    if cpu_before is not None and cpu_after is not None:
        cpu = (cpu_after - cpu_before) / requests * 1e6
    return measurement(requests / wall, latencies, cpu)


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
    parser.add_argument("--rate", metavar="R", type=float,
                        help="open loop: send R requests/s in all (spread over the connections "
                             "and processes) at fixed times, and measure latency from when each "
                             "batch was due, not when it left (no coordinated omission); the table "
                             "shows the rate achieved. Bounded by -n and --seconds (default: "
                             "closed loop, each connection's next batch once its replies are in)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true",
                        help="print the medians as JSON instead of the table")
    output.add_argument("--csv", action="store_true",
                        help="print the medians as CSV (a header row, one row per test and server, "
                             "the settings as columns) instead of the table")
    parser.add_argument("--plot", metavar="FILE.png", type=Path,
                        help="also draw requests/s and p50/p99 latency per test, kv beside the "
                             "other servers, into this PNG (needs: pip install 'kv-tools[plot]')")
    parser.add_argument("--expiry", metavar="KEYS", type=int,
                        help="instead of the tests: load KEYS keys that share one deadline and "
                             "measure PING round trips while the server expires them")
    parser.add_argument("--persistence", metavar="KEYS", type=int,
                        help="instead of the tests: start kv-servers of this Python on 127.0.0.1 "
                             "(-h, -p and -a are not used) and measure, on KEYS string keys, the "
                             "PING stall during BGSAVE, snapshot loading in both formats and AOF "
                             "replay")
    parser.add_argument("--sdk", action="store_true",
                        help="instead of the tests: start kv-server and redis-server on 127.0.0.1 "
                             "(-h, -p and -a are not used) and measure SET and GET through one "
                             "connection of each Python client (kv Client, AsyncClient under trio "
                             "and asyncio, redis-py sync and asyncio) and of raw frames, one call "
                             "per command and 16 per pipeline; -d and -r apply")
    parser.add_argument("--sdk-requests", metavar="N", type=int, default=20_000,
                        help="--sdk: commands per run unpipelined; pipelined runs send 5 times "
                             "as many (20000)")
    parser.add_argument("--appendfsync", choices=["always", "everysec", "no"], default="everysec",
                        help="the --appendfsync of the servers --persistence, --sdk and --realtime start "
                             "(everysec)")
    parser.add_argument("--dir", metavar="DIR", type=Path,
                        help="where --persistence, --sdk and --realtime make their temporary directory, i.e. "
                             "the disk they measure (default: the system's temporary directory)")
    add_realtime_arguments(parser)
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
    if args.realtime:
        check_realtime(args, parser)
        return  # it starts its own servers, with their own password
    if args.sdk:
        if args.sdk_requests < 1 or args.data_size < 0:
            parser.error("--sdk-requests must be at least 1 and the value size >= 0")
        if args.expiry is not None or args.persistence is not None or args.csv:
            parser.error("--sdk is a separate run, printed as a table or --json")
        return  # it starts its own servers, with their own password
    if args.persistence is not None:
        if args.persistence < 1:
            parser.error("--persistence needs at least 1 key")
        if args.expiry is not None:
            parser.error("--persistence and --expiry are separate runs")
        return  # it starts its own servers, with their own password
    if args.data_size < 0 or args.seconds <= 0:
        parser.error("value size must be >= 0 and seconds > 0")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be more than 0 requests/s")
    if args.plot is not None:
        try:
            load_pyplot()  # before any load runs: a missing extra should cost no benchmark
        except PlotUnavailableError as exc:
            parser.error(str(exc))
    if not args.password:
        parser.error("no password: give -a or set KV_PASS")
    args.procs = min(args.procs, args.clients)


def targets(args: argparse.Namespace) -> list[Target]:
    with Client(args.host, args.port, password=args.password, name="kv-bench") as kv:
        kv_pid = kv.info("server")["server"]["process_id"] if is_local(args.host) else None
    found = [Target("kv", KvWire(args.host, args.port, args.password), kv_pid)]
    if args.redis:
        host, port = _host_port(args.redis)
        found.append(Target("redis", RespWire(host, port), redis_pid(host, port)))
    if args.reference:
        host, port = _host_port(args.reference)
        found.append(Target("reference", ReferenceWire(host, port), args.reference_pid))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(args, parser)
    if args.sdk:
        return sdk_main(args)
    if args.realtime:
        return realtime_main(args)
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
        results: Results = {}
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
    output = report_json if args.json else report_csv if args.csv else report
    print(output(args, results))  # first: a plot that fails must not cost the figures
    if args.plot is not None:
        try:
            plot(args.plot, args.tests.split(","), results, header(args))
        except (OSError, ValueError) as exc:
            print(f"kv-bench: --plot {args.plot}: {exc}", file=sys.stderr)
            return 1
    return 0
