"""``kv-bench --sdk``: what the Python SDK costs per call, beside redis-py, in one run.

kv-bench's other figures load the server from several processes with pre-encoded
frames, but an application calls kv_client from one thread or task, and on two shared
cores that client's own Python, more than the server, is what limits it. So this mode
drives ONE connection per client from this process, for SET and GET (``-d``-byte
values, random keys over ``-r`` prefilled keys), one command per call and
``PIPELINE`` per pipeline ``execute()``: kv ``Client``, ``AsyncClient`` under trio
and asyncio and raw frames against kv-server; redis-py ``Redis``, ``redis.asyncio``
and raw RESP against redis-server. Raw frames are pre-encoded requests on a blocking
socket whose replies ``_wire`` scans: about the least any client can do, so "over
raw" (``1/rate - 1/raw_rate``) is a client's own cost per call. "vs redis-py"
divides a kv row's rate by its counterpart's (sync, async, raw).

Rules:

1. Both servers are started here, on 127.0.0.1 in a temporary directory, with an AOF
   fsynced per ``--appendfsync`` (everysec), and killed on the way out, whatever
   happens. Without redis-server (or redis-py) its rows are left out, with a note.
2. Every loop is bounded by its count, and every socket has a timeout.
3. A run connects, does one untimed round, then times a fixed count by
   ``perf_counter`` and ``process_time``. A cell is the median of ``RUNS`` runs,
   interleaved (run 1 of every cell before any run 2) so that a noisy neighbour is
   spread over all cells instead of spoiling one.
4. Keys are drawn before the clock starts and cycled, so drawing costs no client anything.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass
from functools import partial
from itertools import cycle, islice
from pathlib import Path
from typing import Any, Final, Literal

from kv_client import AsyncClient, Client, KvError

from ._loadgen import ERROR_ROOM_BYTES, VARYING_REPLY_BYTES, _recv_counted, prepare
from ._server_process import KILL_TIMEOUT_S, POLL_S, password_file, start_kv_server
from ._wire import TESTS, KvWire, RespWire, Wire, key_name

HOST: Final = "127.0.0.1"
PIPELINE: Final = 16  # commands per pipeline execute(), as the client issue asks
PIPELINED_FACTOR: Final = 5  # pipelined runs send this many times --sdk-requests: similar durations
RUNS: Final = 3  # runs per cell; the median is shown
KEY_DRAWS: Final = 16_384  # random key names drawn per run and cycled; a multiple of PIPELINE
TIMEOUT_S: Final = 30.0  # no single reply takes this long unless a server is stuck
START_TIMEOUT_S: Final = 60.0  # interpreter start and imports of kv-server on a loaded machine
REDIS_START_ATTEMPTS: Final = 3  # another process may take the free port picked for redis-server
COMMANDS: Final = ("SET", "GET")  # SET first in each run: GET then reads what it wrote
Server = Literal["kv", "redis"]
Args = tuple[str | bytes, ...]  # a command's arguments after its name


@dataclass(frozen=True, slots=True)
class Workload:
    """One command at one depth: the calls to cycle through, and how many rounds to time."""

    command: str
    pipeline: int
    rounds: int
    value: bytes
    calls: list[Args]  # one per command
    batches: list[list[Args]]  # the same calls, ``pipeline`` at a time

    @property
    def expected(self) -> object:
        """What the SDKs return for each call: True for SET, the value for GET."""
        return True if self.command == "SET" else self.value


@dataclass(frozen=True, slots=True)
class Sample:
    calls: int
    wall_s: float
    cpu_s: float


@dataclass(frozen=True, slots=True)
class Servers:
    kv_port: int
    password: str
    redis_port: int  # 0 without redis-server, whose rows then do not run


@dataclass(frozen=True, slots=True)
class Driver:
    """One row family of the table: a client, its server, and the rows it is compared with."""

    label: str
    server: Server
    peer: str  # the redis-side row its "vs redis-py" ratio divides by; "" on redis's rows
    raw: str  # the raw row of the same server its "over raw" subtracts; "" on raw rows
    run: Callable[[Servers, Workload], Sample]
    needs_redis_py: bool = False


def _sample(work: Workload, started: float, cpu_started: float, last: object) -> Sample:
    """The timed run's figures, once its last result shows the calls did what they should."""
    sample = Sample(work.rounds * work.pipeline, time.perf_counter() - started,
                    time.process_time() - cpu_started)
    if last != work.expected:
        raise RuntimeError(f"{work.command}: expected {work.expected!r}, got {last!r}")
    return sample


def _time_sync(client: Any, pipeline: Callable[[], Any], work: Workload) -> Sample:
    """One round to connect and warm up, then ``work.rounds`` timed ones through a blocking SDK.

    kv and redis-py share this loop (and method names), so only the SDK under it differs.
    """
    name, last, started, cpu_started = work.command.lower(), None, 0.0, 0.0
    call = getattr(client, name)
    for count in (1, work.rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        if work.pipeline == 1:
            for args in islice(cycle(work.calls), count):
                last = call(*args)
            continue
        for batch in islice(cycle(work.batches), count):
            pipe = pipeline()
            queue = getattr(pipe, name)
            for args in batch:
                queue(*args)
            last = pipe.execute()[-1]
    return _sample(work, started, cpu_started, last)


async def _time_async(client: Any, pipeline: Callable[[], Any], work: Workload) -> Sample:
    """``_time_sync`` for an async SDK: a pipeline queues synchronously, executes awaited."""
    name, last, started, cpu_started = work.command.lower(), None, 0.0, 0.0
    call = getattr(client, name)
    for count in (1, work.rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        if work.pipeline == 1:
            for args in islice(cycle(work.calls), count):
                last = await call(*args)
            continue
        for batch in islice(cycle(work.batches), count):
            pipe = pipeline()
            queue = getattr(pipe, name)
            for args in batch:
                queue(*args)
            last = (await pipe.execute())[-1]
    return _sample(work, started, cpu_started, last)


def _kv_sync(servers: Servers, work: Workload) -> Sample:
    with Client(HOST, servers.kv_port, password=servers.password, name="kv-bench-sdk",
                timeout=TIMEOUT_S) as kv:
        return _time_sync(kv, kv.pipeline, work)


def _kv_async(library: str, servers: Servers, work: Workload) -> Sample:
    async def body() -> Sample:
        async with AsyncClient(HOST, servers.kv_port, password=servers.password, name="kv-bench-sdk",
                               timeout=TIMEOUT_S) as kv:
            return await _time_async(kv, kv.pipeline, work)

    if library == "trio":
        import trio  # present wherever kv-server is; the rest of kv-tools does not need it

        return trio.run(body)
    return asyncio.run(body())


# redis-py is imported by name, not by an import statement, because kv-tools does not
# depend on it (the nox session and the test dependencies install it): without it two
# rows are left out, and mypy needs no stubs for it.
def _redis_sync(servers: Servers, work: Workload) -> Sample:
    redis = importlib.import_module("redis")
    client = redis.Redis(HOST, servers.redis_port, socket_timeout=TIMEOUT_S)
    try:
        return _time_sync(client, partial(client.pipeline, transaction=False), work)
    except redis.RedisError as exc:
        raise RuntimeError(f"redis-py: {exc!r}") from exc
    finally:
        client.close()


def _redis_async(servers: Servers, work: Workload) -> Sample:
    redis = importlib.import_module("redis.asyncio")

    async def body() -> Sample:
        client = redis.Redis(host=HOST, port=servers.redis_port, socket_timeout=TIMEOUT_S)
        try:
            return await _time_async(client, partial(client.pipeline, transaction=False), work)
        except redis.RedisError as exc:
            raise RuntimeError(f"redis.asyncio: {exc!r}") from exc
        finally:
            await client.aclose()

    return asyncio.run(body())


def _raw(wire: Wire, work: Workload) -> Sample:
    """Pre-encoded requests, ``work.pipeline`` per write; replies counted by ``wire.scan``."""
    payloads = [b"".join(wire.encode([work.command, *args]) for args in batch) for batch in work.batches]
    expected = wire.reply(TESTS[work.command.lower()], work.value)
    assert expected is not None  # SET's and GET's replies are known in advance
    buffer = bytearray(work.pipeline * (len(expected) + VARYING_REPLY_BYTES) + ERROR_ROOM_BYTES)
    pipeline, end, started, cpu_started = work.pipeline, 0, 0.0, 0.0
    with wire.connect() as sock:
        for count in (1, work.rounds):  # as in _time_sync: a warm-up round, then the timed ones
            started, cpu_started = time.perf_counter(), time.process_time()
            for payload in islice(cycle(payloads), count):
                sock.sendall(payload)
                end = _recv_counted(sock, wire, buffer, pipeline)
        sample = _sample(work, started, cpu_started, work.expected)  # checked below, off the clock
    if buffer[:end] != expected * pipeline:  # the last round's replies, byte for byte
        raise RuntimeError(f"{work.command}: unexpected replies {bytes(buffer[:60])!r}")
    return sample


DRIVERS: Final = (
    Driver("kv Client", "kv", "redis-py Redis", "kv raw frames", _kv_sync),
    Driver("kv AsyncClient/trio", "kv", "redis-py asyncio", "kv raw frames", partial(_kv_async, "trio")),
    Driver("kv AsyncClient/asyncio", "kv", "redis-py asyncio", "kv raw frames",
           partial(_kv_async, "asyncio")),
    Driver("kv raw frames", "kv", "redis raw RESP", "",
           lambda servers, work: _raw(KvWire(HOST, servers.kv_port, servers.password), work)),
    Driver("redis-py Redis", "redis", "", "redis raw RESP", _redis_sync, needs_redis_py=True),
    Driver("redis-py asyncio", "redis", "", "redis raw RESP", _redis_async, needs_redis_py=True),
    Driver("redis raw RESP", "redis", "", "",
           lambda servers, work: _raw(RespWire(HOST, servers.redis_port), work)),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _start_redis(binary: str, directory: Path, appendfsync: str, stack: ExitStack) -> int:
    """redis-server with an AOF and no snapshots, killed when ``stack`` closes; its port.

    Raises:
        RuntimeError: it exited (each of ``REDIS_START_ATTEMPTS`` free ports was taken
            meanwhile, or it failed) or did not answer PING within ``START_TIMEOUT_S``.
    """
    log = directory / "redis.log"
    for _ in range(REDIS_START_ATTEMPTS):
        port = _free_port()
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "yes",
                 "--appendfsync", appendfsync, "--dir", str(directory)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        stack.callback(proc.wait, KILL_TIMEOUT_S)  # runs after the kill below: the stack is LIFO
        stack.callback(proc.kill)
        deadline = time.monotonic() + START_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return port
            time.sleep(POLL_S)
        if proc.poll() is None:
            break  # alive but mute: another port will not help
    raise RuntimeError(f"redis-server did not start: {log.read_text(errors='replace')[-2000:]}")


def _workload(command: str, pipeline: int, count: int, keyspace: int, value: bytes) -> Workload:
    rng = random.Random(f"{command}/{pipeline}")  # the same keys for every client
    keys = [key_name(rng.randrange(keyspace)) for _ in range(KEY_DRAWS)]
    calls: list[Args] = [(k, value) if command == "SET" else (k,) for k in keys]
    batches = [calls[i:i + pipeline] for i in range(0, len(calls), pipeline)]
    return Workload(command, pipeline, max(1, count // pipeline), value, calls, batches)


Results = dict[tuple[str, str, int], list[Sample]]  # (command, client, pipeline) -> one per run


def measure_sdk(args: argparse.Namespace) -> Results:
    """Every cell ``RUNS`` times, interleaved, against servers started and killed here."""
    value = b"x" * args.data_size
    redis_binary = shutil.which("redis-server")
    has_redis_py = importlib.util.find_spec("redis") is not None
    if redis_binary is None:
        print("kv-bench: redis-server not found: the redis rows are left out", file=sys.stderr)
    elif not has_redis_py:
        print("kv-bench: redis-py is not installed (pip install redis): its rows are left out",
              file=sys.stderr)
    drivers = [d for d in DRIVERS if (d.server == "kv" or redis_binary is not None)
               and (has_redis_py or not d.needs_redis_py)]
    works = [_workload(c, p, args.sdk_requests * (PIPELINED_FACTOR if p > 1 else 1), args.keyspace, value)
             for c in COMMANDS for p in (1, PIPELINE)]
    results: Results = {}
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kv-bench-sdk-", dir=args.dir)))
        password_path, password = password_file(root)
        kv = start_kv_server(root / "kv", password_path, password, "--appendfsync", args.appendfsync,
                             start_timeout_s=START_TIMEOUT_S)
        stack.callback(kv.kill)
        redis_port = 0
        if redis_binary is not None:
            (root / "redis").mkdir()
            redis_port = _start_redis(redis_binary, root / "redis", args.appendfsync, stack)
        servers = Servers(kv.port, password, redis_port)
        prepare(KvWire(HOST, kv.port, password), TESTS["get"], args.keyspace, value, pops=0)
        if redis_port:
            prepare(RespWire(HOST, redis_port), TESTS["get"], args.keyspace, value, pops=0)
        live = sys.stderr.isatty()
        for run in range(RUNS):
            for work in works:
                for driver in drivers:
                    if live:
                        print(f"\rrun {run + 1}/{RUNS}: {work.command} P={work.pipeline} {driver.label}"
                              "\033[K", end="", file=sys.stderr, flush=True)
                    results.setdefault((work.command, driver.label, work.pipeline), []).append(
                        driver.run(servers, work))
        if live:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    return results


@dataclass(frozen=True, slots=True)
class Row:
    command: str
    client: str
    server: Server
    pipeline: int
    runs: int
    requests_per_s: float
    us_per_call: float
    cpu_us_per_call: float
    over_raw_us_per_call: float | None
    vs_redis_py: float | None


def rows(results: Results) -> list[Row]:
    """The medians of each cell, in table order, with the figures that compare rows."""
    rate = {key: statistics.median(s.calls / s.wall_s for s in runs) for key, runs in results.items()}
    found = []
    for command in COMMANDS:
        for pipeline in (1, PIPELINE):
            for d in DRIVERS:
                key = (command, d.label, pipeline)
                if key not in results:
                    continue
                raw, peer = rate.get((command, d.raw, pipeline)), rate.get((command, d.peer, pipeline))
                found.append(Row(
                    command, d.label, d.server, pipeline, len(results[key]), rate[key], 1e6 / rate[key],
                    statistics.median(s.cpu_s / s.calls * 1e6 for s in results[key]),
                    None if raw is None else 1e6 / rate[key] - 1e6 / raw,
                    None if peer is None else rate[key] / peer))
    return found


def report(args: argparse.Namespace, results: Results) -> str:
    """A markdown table: one row per command, depth and client."""
    lines = [
        (f"kv-bench --sdk: one connection per client, {args.data_size}-byte values over "
         f"{args.keyspace:,} random keys, AOF {args.appendfsync} on both servers; median of {RUNS} "
         f"runs of {args.sdk_requests:,} calls ({args.sdk_requests * PIPELINED_FACTOR:,} at P={PIPELINE})"),
        "",
        "| command | client | mode | req/s | µs/call | CPU µs/call | over raw µs/call | vs redis-py |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows(results):
        mode = "unpipelined" if r.pipeline == 1 else f"P={r.pipeline}"
        ratio = "-" if r.vs_redis_py is None else f"{r.vs_redis_py:.2f}x"
        over = "-" if r.over_raw_us_per_call is None else f"{r.over_raw_us_per_call:.1f}"
        lines.append(f"| {r.command} | {r.client} | {mode} | {r.requests_per_s:,.0f} | {r.us_per_call:.1f} "
                     f"| {r.cpu_us_per_call:.1f} | {over} | {ratio} |")
    return "\n".join(lines)


def report_json(args: argparse.Namespace, results: Results) -> str:
    settings = {"data_size": args.data_size, "keyspace": args.keyspace, "appendfsync": args.appendfsync,
                "requests": args.sdk_requests, "pipelined_requests": args.sdk_requests * PIPELINED_FACTOR,
                "pipeline": PIPELINE, "runs": RUNS}
    return json.dumps({"settings": settings, "results": [asdict(r) for r in rows(results)]}, indent=1)


def main(args: argparse.Namespace) -> int:
    """kv-bench --sdk: measure, then print the table (or JSON); 1 with a message on failure."""
    try:
        results = measure_sdk(args)
    except (OSError, RuntimeError, ValueError, KvError) as exc:
        print(f"kv-bench: {exc}", file=sys.stderr)
        return 1
    print((report_json if args.json else report)(args, results))
    return 0
