"""``kv-bench --realtime``: pub/sub fan-out and a work queue, kv-server beside redis-server.

Issue 7's two workloads, against both servers in one run (``_fanout``, ``_queue_bench``):

- **fan-out**: 1 publisher, ``--realtime-subscribers`` (50) subscribers of one
  channel, each its own connection, spread over ``--procs`` processes that each
  wait on their sockets with epoll; ``--realtime-publishes`` 16-byte messages,
  ``--realtime-pipeline`` PUBLISH per write. Figures: messages delivered per
  second (publishes x subscribers that arrived, counted by the subscribers) and
  publishes per second.
- **queue P/C** for each pair of ``--realtime-queues`` (1/1 and 4/4): P producer
  processes RPUSH ``--realtime-items`` 16-byte items in all,
  ``--realtime-push-batch`` per write, and C consumer processes BLPOP them.
  Figure: items per second from start to the last item popped.

Rules:

1. Both servers are started here, on 127.0.0.1 in a temporary directory, with an
   AOF fsynced per ``--appendfsync`` (everysec: kv-server's default; redis-server
   with ``appendonly yes``) and no snapshots, and killed on the way out, whatever
   happens. Without redis-server its column is left out, with a note.
2. Raw frames and RESP on plain sockets, as kv-bench's other loads: the client does
   the least any client could, so the figures are the servers'.
3. Every run is bounded by its count and by ``--seconds`` (then the backlog gets
   ``_realtime.GRACE_S`` to drain); every wait has a time limit.
4. Each cell is the median of ``--realtime-runs`` (3) runs, interleaved (run 1 of
   every cell before any run 2), so a noisy neighbour spreads over all cells.
5. Whatever was lost is counted and shown, over all runs; any loss makes the exit
   status 1. Server CPU is read from /proc; client CPU is every worker process's own,
   so the table shows which side was busy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

from ._fanout import PUBLISH_BATCH, Fanout, measure_fanout
from ._queue_bench import BLPOP_TIMEOUT_S, MAX_PRODUCERS, PUSH_BATCH, Queue, measure_queue
from ._realtime import PAYLOAD_BYTES, Sample, Wire
from ._sdk_bench import HOST, START_TIMEOUT_S, _start_redis
from ._server_process import password_file, redis_pid, start_kv_server
from ._wire import KvWire, RespWire

FANOUT: Final = "fan-out"
# /proc counts CPU time in ticks (10 ms at the usual 100 Hz): a run shorter than this
# gives no server CPU figure rather than one off by tens of percent.
CPU_MIN_WALL_S: Final = 0.5
Results = dict[tuple[str, str], list[Sample]]  # (workload, server) -> one sample per run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--realtime")
    group.add_argument("--realtime", action="store_true",
                       help="instead of the tests: start kv-server and redis-server on 127.0.0.1 (-h, -p "
                            "and -a are not used) and measure pub/sub fan-out (1 publisher, many "
                            "subscribers) and a queue (RPUSH producers, BLPOP consumers) on both; "
                            "--procs processes hold the subscribers, --seconds bounds each run")
    group.add_argument("--realtime-subscribers", metavar="N", type=int, default=50,
                       help="subscribers, one connection each (50)")
    group.add_argument("--realtime-publishes", metavar="N", type=int, default=200_000,
                       help="messages published per fan-out run; 0 for no fan-out runs (200000)")
    group.add_argument("--realtime-items", metavar="N", type=int, default=100_000,
                       help="items pushed and popped per queue run (100000)")
    group.add_argument("--realtime-queues", metavar="P/C,...", default="1/1,4/4",
                       help="producer/consumer counts of the queue runs; '' for none (1/1,4/4)")
    group.add_argument("--realtime-pipeline", metavar="N", type=int, default=PUBLISH_BATCH,
                       help=f"PUBLISH commands per write, one write in flight ({PUBLISH_BATCH})")
    group.add_argument("--realtime-push-batch", metavar="N", type=int, default=PUSH_BATCH,
                       help=f"RPUSH commands per write, one write in flight per producer ({PUSH_BATCH})")
    group.add_argument("--realtime-runs", metavar="N", type=int, default=3,
                       help="runs per figure; medians (3)")


def queue_settings(text: str, items: int, seconds: float, batch: int = PUSH_BATCH) -> list[Queue]:
    """``"1/1,4/4"`` as queue runs (``""``: none).

    Raises:
        ValueError: a pair is not P/C with 1 <= P <= MAX_PRODUCERS and C >= 1.
    """
    found = []
    for pair in filter(None, text.split(",")):
        producers, _, consumers = pair.partition("/")
        p, c = int(producers), int(consumers)
        if not 1 <= p <= MAX_PRODUCERS or c < 1:
            raise ValueError(f"{pair}: need 1 to {MAX_PRODUCERS} producers and at least 1 consumer")
        found.append(Queue(p, c, items, seconds, batch))
    return found


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.expiry is not None or args.persistence is not None or args.sdk or args.csv:
        parser.error("--realtime is a separate run, printed as a table or --json")
    for name in ("subscribers", "pipeline", "items", "push_batch", "runs"):
        if getattr(args, f"realtime_{name}") < 1:
            parser.error(f"--realtime-{name.replace('_', '-')} must be at least 1")
    if args.realtime_publishes < 0:
        parser.error("--realtime-publishes must be 0 (no fan-out) or more")
    if args.procs < 1 or args.seconds <= 0:
        parser.error("--procs must be at least 1 and --seconds more than 0")
    try:
        queue_settings(args.realtime_queues, args.realtime_items, args.seconds)
    except ValueError as exc:
        parser.error(f"--realtime-queues {exc}")


@dataclass(frozen=True, slots=True)
class Endpoint:
    label: str
    wire: Wire
    pid: int | None


def _fanout(fanout: Fanout, endpoint: Endpoint, run: int) -> Sample:
    return measure_fanout(endpoint.wire, endpoint.pid, f"bench:{run}", fanout)


def _queue(queue: Queue, endpoint: Endpoint, run: int) -> Sample:
    # A fresh list per run and cell, so that none starts with leftovers.
    return measure_queue(endpoint.wire, endpoint.pid, f"bench:queue:{run}:{queue.label}", queue)


def measure_realtime(args: argparse.Namespace) -> Results:
    """Every cell ``--realtime-runs`` times, interleaved, against servers started and killed here."""
    fanout = Fanout(args.realtime_subscribers, args.realtime_publishes, args.procs, args.seconds,
                    args.realtime_pipeline)
    queues = queue_settings(args.realtime_queues, args.realtime_items, args.seconds, args.realtime_push_batch)
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("kv-bench: redis-server not found: the redis column is left out", file=sys.stderr)
    results: Results = {}
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kv-bench-rt-", dir=args.dir)))
        password_path, password = password_file(root)
        kv = start_kv_server(root / "kv", password_path, password, "--appendfsync", args.appendfsync,
                             start_timeout_s=START_TIMEOUT_S)
        stack.callback(kv.kill)
        endpoints = [Endpoint("kv", KvWire(HOST, kv.port, password), kv.proc.pid)]
        if redis_binary is not None:
            (root / "redis").mkdir()
            port = _start_redis(redis_binary, root / "redis", args.appendfsync, stack)
            endpoints.append(Endpoint("redis", RespWire(HOST, port), redis_pid(HOST, port)))
        cells: list[tuple[str, Callable[[Endpoint, int], Sample]]] = [
            (FANOUT, partial(_fanout, fanout))] if fanout.messages else []
        cells += [(f"queue {q.label}", partial(_queue, q)) for q in queues]
        live = sys.stderr.isatty()
        for run in range(args.realtime_runs):
            for name, measure in cells:
                for endpoint in endpoints:
                    if live:
                        print(f"\rrun {run + 1}/{args.realtime_runs}: {name} {endpoint.label}\033[K",
                              end="", file=sys.stderr, flush=True)
                    results.setdefault((name, endpoint.label), []).append(measure(endpoint, run))
        if live:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    return results


@dataclass(frozen=True, slots=True)
class Row:
    """The medians of one workload on one server, and what was lost over all runs."""

    workload: str
    server: str
    runs: int
    rate: float  # messages delivered / items popped per second
    send_rate: float  # publishes / items pushed per second
    lost: int
    server_cpu_us: float | None  # per message delivered / item popped
    server_cores: float | None  # server CPU time / wall time
    client_cores: float
    backlog: float | None  # a queue's length when the producers were done
    rates: tuple[float, ...]  # each run's rate, in run order


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def rows(results: Results) -> list[Row]:
    found = []
    for (workload, server), runs in results.items():
        timed = [s for s in runs if s.server_cpu_s is not None and s.arrived and s.wall_s >= CPU_MIN_WALL_S]
        found.append(Row(
            workload, server, len(runs), statistics.median(s.rate for s in runs),
            statistics.median(s.send_rate for s in runs), sum(s.lost for s in runs),
            _median([s.server_cpu_s / s.arrived * 1e6 for s in timed if s.server_cpu_s is not None]),
            _median([s.server_cpu_s / s.wall_s for s in timed if s.server_cpu_s is not None]),
            statistics.median(s.client_cpu_s / s.wall_s if s.wall_s else 0.0 for s in runs),
            _median([None if s.backlog is None else float(s.backlog) for s in runs]),
            tuple(s.rate for s in runs)))
    return found


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(kv: float | None, redis: float | None) -> str:
    return "-" if kv is None or not redis else f"{kv / redis:.2f}x"


def report(args: argparse.Namespace, results: Results) -> str:
    """A markdown table: one row per workload and figure, kv beside redis and their ratio."""
    by_key = {(r.workload, r.server): r for r in rows(results)}
    figures: list[tuple[str, Callable[[Row], float | None], int, bool]] = [
        ("{unit}/s", lambda r: r.rate, 0, True),
        ("{sent}/s", lambda r: r.send_rate, 0, True),
        ("lost (all runs)", lambda r: r.lost, 0, False),
        ("server CPU µs/{one}", lambda r: r.server_cpu_us, 2, True),
        ("server CPU, cores", lambda r: r.server_cores, 2, False),
        ("client CPU, cores", lambda r: r.client_cores, 2, False),
        ("backlog when pushing ended", lambda r: r.backlog, 0, False),
    ]
    lines = [
        (f"kv-bench --realtime: AOF {args.appendfsync} on both servers, {PAYLOAD_BYTES}-byte payloads, "
         f"median of {args.realtime_runs} runs, each bounded by its count and {args.seconds:g} s"),
        (f"fan-out: 1 publisher ({args.realtime_pipeline} PUBLISH per write), {args.realtime_subscribers} "
         f"subscribers over {min(args.procs, args.realtime_subscribers)} epoll processes, "
         f"{args.realtime_publishes:,} publishes; queue P/C: RPUSH {args.realtime_push_batch} per write, "
         f"one BLPOP (timeout {BLPOP_TIMEOUT_S} s) at a time per consumer, {args.realtime_items:,} items; "
         "a process per producer and consumer"),
        "",
        "| workload | figure | kv | redis | kv/redis |",
        "|---|---|--:|--:|--:|",
    ]
    for workload in dict.fromkeys(w for w, _ in results):
        fanout = workload == FANOUT
        words = {"unit": "delivered msg" if fanout else "items", "one": "msg" if fanout else "item",
                 "sent": "publishes" if fanout else "pushed items"}
        kv, redis = by_key.get((workload, "kv")), by_key.get((workload, "redis"))
        for label, get, digits, ratio in figures[:-1] if fanout else figures:
            a, b = (None if r is None else get(r) for r in (kv, redis))
            lines.append(f"| {workload} | {label.format(**words)} | {_cell(a, digits)} | {_cell(b, digits)} "
                         f"| {_ratio(a, b) if ratio else '-'} |")
    return "\n".join(lines)


def report_json(args: argparse.Namespace, results: Results) -> str:
    settings = {"appendfsync": args.appendfsync, "payload_bytes": PAYLOAD_BYTES, "runs": args.realtime_runs,
                "seconds": args.seconds, "subscribers": args.realtime_subscribers,
                "subscriber_procs": min(args.procs, args.realtime_subscribers),
                "publishes": args.realtime_publishes, "publish_batch": args.realtime_pipeline,
                "items": args.realtime_items, "queues": args.realtime_queues,
                "push_batch": args.realtime_push_batch,
                "blpop_timeout_s": BLPOP_TIMEOUT_S}
    return json.dumps({"settings": settings, "results": [
        {"workload": r.workload, "server": r.server, "runs": r.runs, "per_s": r.rate,
         "sent_per_s": r.send_rate, "lost": r.lost, "server_cpu_us": r.server_cpu_us,
         "server_cores": r.server_cores, "client_cores": r.client_cores, "backlog": r.backlog,
         "per_s_runs": r.rates}
        for r in rows(results)]}, indent=1)


def main(args: argparse.Namespace) -> int:
    """kv-bench --realtime: measure, print the table (or JSON); 1 with a message on failure or loss."""
    try:
        results = measure_realtime(args)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"kv-bench: {exc}", file=sys.stderr)
        return 1
    print((report_json if args.json else report)(args, results))
    lost = [(r.workload, r.server, r.lost) for r in rows(results) if r.lost]
    for workload, server, count in lost:
        print(f"kv-bench: {workload} on {server}: {count:,} lost over {len(results[(workload, server)])} "
              "runs", file=sys.stderr)
    return 1 if lost else 0
