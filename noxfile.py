"""Sessions: tests and lint run by default (what CI runs); docs, bench and slow on demand.

    nox                 tests + lint
    nox -s tests -- -k glob    pass pytest arguments after --
    nox -s docs         regenerate docs/commands.md from the command table
    nox -s bench        kv-server vs redis-server vs the reference server, side by side
                        (KV_APPENDFSYNC=always|everysec|no: both servers write an AOF that way)
    nox -s bench_fsync  SET under each fsync policy, kv-server beside redis-server, one table
    nox -s sdk_bench    the Python SDK (sync, trio, asyncio) beside redis-py: req/s, µs per call
    nox -s realtime_bench  pub/sub fan-out and BLPOP queues, kv-server beside redis-server
    nox -s expiry       the longest pause while a million keys expire together
    nox -s persistence_figures  BGSAVE stall, snapshot load rates and AOF replay rate
    nox -s slow         the long variants (more hypothesis examples)
    nox -s load         1,000 busy clients for 30 s and 10,000 idle ones: p99, RSS per connection
    nox -s fuzz         atheris on each fuzz/ harness, KV_FUZZ_SECONDS each (default 60)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# kv-client with its encryption extras and kv-tools with its plot extra, so that
# GnuPG and age encryption and kv-bench --plot are tested and type-checked too.
PACKAGES = [f"packages/{name}"
            for name in ("kv-protocol", "kv-server", "kv-client[gpg,age]", "kv-tools[plot]")]
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
MAX_MODULE_LINES = 400
# The reference servers of ../shared/bench, when this checkout sits beside them.
REFERENCE_SERVER = Path(os.environ.get("KV_REFERENCE_SERVER", ROOT.parent / "shared/bench/server_trio.py"))

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"


def install_workspace(session: nox.Session, *groups: str) -> None:
    editables = [arg for package in PACKAGES for arg in ("-e", package)]
    session.install(*editables, *nox.project.dependency_groups(PYPROJECT, *groups))


def ensure_debian_package(session: nox.Session, binary: str, package: str, why: str) -> None:
    """Install a Debian package that tests or benchmarks run, when it is missing and we can."""
    if shutil.which(binary):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.log(f"{binary} is missing: installing Debian's package {package}")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        try:
            session.run("apt-get", "update", "-qq", external=True, env=env)
            session.run("apt-get", "install", "-y", "-qq", package, external=True, env=env)
        except nox.command.CommandFailed:
            session.warn(f"installing {package} failed; {why} are skipped")
    else:
        session.warn(f"{binary} is not installed and cannot be installed here (needs root and "
                     f"apt-get); {why} are skipped")


def ensure_redis_server(session: nox.Session) -> None:
    """Tests and benchmarks compare kv with redis-server."""
    ensure_debian_package(session, "redis-server", "redis-server", "the comparisons with it")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests of every package."""
    install_workspace(session, "test")
    ensure_redis_server(session)
    ensure_debian_package(session, "gpg", "gnupg", "the GPG encryption tests")
    session.run("pytest", *session.posargs)


# Issue 8's full sizes; each can be overridden from the environment.
LOAD_SIZES = {"KV_LOAD_CLIENTS": "1000", "KV_LOAD_SECONDS": "30", "KV_IDLE_CLIENTS": "10000"}


@nox.session
def load(session: nox.Session) -> None:
    """The load tests at full size: 1,000 busy clients for 30 s, 10,000 idle ones.

    test_load.py prints its figures (throughput, p50/p99/p999/max latency, server RSS,
    bytes per idle connection) and writes them as JSON under pytest's tmp dir. Sizes can
    be overridden, e.g. ``KV_IDLE_CLIENTS=20000 nox -s load``; pass pytest options after
    --, e.g. ``nox -s load -- -k idle``. The idle test needs a hard limit of at least
    10,164 open files (ulimit -Hn) and skips below it.
    """
    install_workspace(session, "test")
    env = {name: os.environ.get(name, size) for name, size in LOAD_SIZES.items()}
    session.run("pytest", "tests-integration/test_load.py", "-s", *session.posargs, env=env)


@nox.session
def slow(session: nox.Session) -> None:
    """The same tests with many more generated examples."""
    install_workspace(session, "test")
    ensure_redis_server(session)
    session.run("pytest", *session.posargs, env={"HYPOTHESIS_PROFILE": "long"})


@nox.session
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing: atheris on every harness in fuzz/, one after the other.

    Each runs for KV_FUZZ_SECONDS (default 60) from the seeds in fuzz/corpus; the
    table at the end gives executions and crashes, and a crash fails the session
    (its input is saved in fuzz/crashes/). Name harnesses after --, e.g.
    ``KV_FUZZ_SECONDS=600 nox -s fuzz -- dispatch files``.
    """
    install_workspace(session)
    session.install("atheris>=2.3")
    session.run("python", "fuzz/run.py", *session.posargs)


@nox.session
def crash(session: nox.Session) -> None:
    """The SIGKILL crash test with 20 rounds per fsync policy (the default run does 3)."""
    install_workspace(session, "test")
    session.run("pytest", "tests-integration/test_crash.py", *session.posargs,
                env={"KV_CRASH_ROUNDS": "20"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy --strict, and the module size rule."""
    install_workspace(session, "lint")
    session.run("ruff", "check", ".")
    session.run("mypy")
    too_long = []
    for path in sorted(ROOT.glob("packages/*/src/**/*.py")):
        text = path.read_text()
        # Generated modules (kv_client's async and pipeline methods) grow with the
        # command table, one short method per command; nobody reads them whole.
        if "\nGENERATED by " in text[:500]:
            continue
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    if too_long:
        session.error(f"modules over {MAX_MODULE_LINES} lines (split by family):\n" + "\n".join(too_long))


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/commands.md from the command table."""
    session.install("-e", "packages/kv-protocol")
    session.run("python", "-c", "import pathlib, kv_protocol.commands as c; "
                "pathlib.Path('docs/commands.md').write_text(c.render_markdown())")


def _start(command: list[str], ready: re.Pattern[str] | None, log: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a server; return it and its ready line (or '' when it prints none)."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=out, text=True)
    if ready is None:
        return proc, ""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not ready.search(line):
        proc.kill()
        raise RuntimeError(f"{command[0]} did not start: {line!r} {log.read_text()}")
    return proc, line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(proc: subprocess.Popen[str], port: int) -> None:
    """Wait until ``proc`` (not some other process) listens on ``port``."""
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


FSYNC_POLICIES = ("no", "everysec", "always")
# (pipeline, requests) of every bench run: -n bounds each run, as --seconds does.
BENCH_DEPTHS = (("1", "200000"), ("16", "2000000"))
BENCH_RUN_S = "20"


def _fsync_policy(session: nox.Session) -> str | None:
    """KV_APPENDFSYNC, when set: the AOF policy both kv-server and redis-server get."""
    policy = os.environ.get("KV_APPENDFSYNC") or None
    if policy is not None and policy not in FSYNC_POLICIES:
        session.error(f"KV_APPENDFSYNC={policy!r}: use one of {', '.join(FSYNC_POLICIES)}")
    return policy


def _bench_servers(session: nox.Session, work: Path, policy: str | None, procs: list[subprocess.Popen[str]],
                   *, reference: bool) -> list[str]:
    """Start kv-server, redis-server and (when asked and present) the reference server.

    With ``policy`` None kv-server runs with its default AOF (everysec) and redis-server
    without persistence, the reference of `nox -s bench`; with a policy both write an
    AOF fsynced that way and neither writes snapshots. Every process started is appended
    to ``procs`` at once, so the caller stops it whatever fails later.

    Returns:
        kv-bench's arguments naming the servers.
    """
    python = str(Path(session.bin) / "python")
    fsync = ["--appendfsync", policy] if policy else []
    kv, line = _start([python, "-m", "kv_server", "--port", "0", "--pass", "bench", "--dir",
                       str(work / "kv"), *fsync], re.compile(r"ready on tcp 127\.0\.0\.1:\d+"),
                      work / "kv.log")
    procs.append(kv)
    match = re.search(r"127\.0\.0\.1:(\d+)", line)
    assert match
    args = ["-p", match[1], "-a", "bench"]
    if shutil.which("redis-server"):
        port = _free_port()
        aof = ["--appendonly", "yes", "--appendfsync", policy] if policy else ["--appendonly", "no"]
        (work / "redis").mkdir()
        redis, _ = _start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           *aof, "--dir", str(work / "redis")], None, work / "redis.log")
        procs.append(redis)
        _wait_for_port(redis, port)
        args += ["--redis", f"127.0.0.1:{port}"]
    if reference and REFERENCE_SERVER.exists():
        port = _free_port()
        ref, _ = _start([python, str(REFERENCE_SERVER), "--mode", "lowlevel", "--port", str(port)],
                        None, work / "reference.log")
        procs.append(ref)
        _wait_for_port(ref, port)
        args += ["--reference", f"127.0.0.1:{port}", "--reference-pid", str(ref.pid)]
    elif reference:
        session.warn(f"no reference server at {REFERENCE_SERVER} (set KV_REFERENCE_SERVER)")
    return args


def _stop_servers(procs: list[subprocess.Popen[str]], work: Path) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    shutil.rmtree(work, ignore_errors=True)


@nox.session
def bench(session: nox.Session) -> None:
    """kv-bench at pipeline 1 and 16: kv-server beside redis-server and the reference server.

    Pass kv-bench options after --, e.g. ``nox -s bench -- --repeat 3``. By default
    kv-server keeps its default AOF (everysec) and redis-server runs without
    persistence; ``KV_APPENDFSYNC=always|everysec|no`` gives both an AOF with that
    policy (and no snapshots), e.g. ``KV_APPENDFSYNC=always nox -s bench -- -t set``.
    """
    policy = _fsync_policy(session)
    install_workspace(session)
    ensure_redis_server(session)
    session.log(f"AOF fsync policy: {policy} for kv-server and redis-server" if policy else
                "kv-server: default AOF (everysec); redis-server: no persistence (set KV_APPENDFSYNC "
                "to give both the same policy)")
    work = Path(tempfile.mkdtemp(prefix="kv-bench-"))
    procs: list[subprocess.Popen[str]] = []
    try:
        args = _bench_servers(session, work, policy, procs, reference=True)
        for pipeline, requests in BENCH_DEPTHS:
            session.run("kv-bench", *args, "-P", pipeline, "-n", requests, "--seconds", BENCH_RUN_S,
                        *session.posargs)
    finally:
        _stop_servers(procs, work)
    if sys.platform != "linux":
        session.warn("server CPU per request is read from /proc and is only shown on Linux")


def _cell(figures: dict[str, float], name: str, width: int, digits: int = 0) -> str:
    value = figures.get(name)
    return f"{'-' if value is None else f'{value:,.{digits}f}':>{width}}"


def fsync_table(rows: list[tuple[str, str, dict[str, dict[str, float]]]]) -> str:
    """One line per policy and pipeline: kv beside redis, the ratio, and CPU per request."""
    lines = [(f"{'policy':9} {'P':>3} {'kv req/s':>11} {'redis req/s':>12} {'kv/redis':>9} "
              f"{'kv p99 us':>10} {'redis p99 us':>13} {'kv cpu us':>10} {'redis cpu us':>13}")]
    for policy, pipeline, by_server in rows:
        kv, redis = by_server.get("kv", {}), by_server.get("redis", {})
        ratio = f"{kv['requests_per_s'] / redis['requests_per_s']:.2f}x" if kv and redis else "-"
        lines.append(f"{policy:9} {pipeline:>3} {_cell(kv, 'requests_per_s', 11)} "
                     f"{_cell(redis, 'requests_per_s', 12)} {ratio:>9} {_cell(kv, 'p99_us', 10)} "
                     f"{_cell(redis, 'p99_us', 13)} {_cell(kv, 'cpu_us_per_request', 10, 2)} "
                     f"{_cell(redis, 'cpu_us_per_request', 13, 2)}")
    return "\n".join(lines)


@nox.session
def bench_fsync(session: nox.Session) -> None:
    """SET at pipeline 1 and 16 under each --appendfsync policy, kv-server beside redis-server.

    For each of no, everysec and always, both servers start afresh with an AOF
    fsynced that way and no snapshots (redis-server: ``--appendonly yes
    --appendfsync P --save ""``); kv-bench runs ``-t set --repeat 3`` against both,
    interleaved, and one table is printed at the end. Pass more kv-bench options
    after --, e.g. ``nox -s bench_fsync -- --repeat 5``.
    """
    install_workspace(session)
    ensure_redis_server(session)
    rows: list[tuple[str, str, dict[str, dict[str, float]]]] = []
    for policy in FSYNC_POLICIES:
        work = Path(tempfile.mkdtemp(prefix=f"kv-bench-{policy}-"))
        procs: list[subprocess.Popen[str]] = []
        try:
            args = _bench_servers(session, work, policy, procs, reference=False)
            for pipeline, requests in BENCH_DEPTHS:
                session.log(f"appendfsync {policy}, pipeline {pipeline}")
                output = session.run("kv-bench", *args, "-P", pipeline, "-n", requests, "--seconds",
                                     BENCH_RUN_S, "-t", "set", "--repeat", "3", *session.posargs,
                                     "--json", silent=True, stderr=None)
                assert isinstance(output, str)
                found = json.loads(output)["results"]
                rows.append((policy, pipeline, {r["server"]: r for r in found if r["test"] == "set"}))
        finally:
            _stop_servers(procs, work)
    print(fsync_table(rows))


@nox.session
def sdk_bench(session: nox.Session) -> None:
    """kv-bench --sdk: SET and GET through one connection of each Python client.

    kv Client and AsyncClient (trio, asyncio) against kv-server, redis-py (sync,
    asyncio) against redis-server, and raw frames against both, unpipelined and
    pipelined; kv-bench starts both servers itself, each with an AOF fsynced every
    second. Pass kv-bench options after --, e.g. ``nox -s sdk_bench -- --sdk-requests 5000 --json``.
    """
    install_workspace(session)
    session.install("redis>=5")  # redis-py, the SDK compared with; kv-tools does not depend on it
    ensure_redis_server(session)
    session.run("kv-bench", "--sdk", *session.posargs)


@nox.session
def realtime_bench(session: nox.Session) -> None:
    """kv-bench --realtime: pub/sub fan-out (1 publisher, 50 subscribers) and RPUSH/BLPOP
    queues (1/1 and 4/4), kv-server beside redis-server, both with an AOF fsynced every second.

    kv-bench starts both servers itself. Pass kv-bench options after --, e.g.
    ``nox -s realtime_bench -- --realtime-queues 1/4 --realtime-push-batch 1 --json``.
    """
    install_workspace(session)
    ensure_redis_server(session)
    session.run("kv-bench", "--realtime", *session.posargs)


@nox.session
def persistence_figures(session: nox.Session) -> None:
    """BGSAVE's PING stall, snapshot loading (both formats) and AOF replay on a million keys.

    kv-bench starts its own kv-servers on 127.0.0.1 in a temporary directory (set
    TMPDIR to measure another disk). Pass kv-bench options after --, e.g.
    ``nox -s persistence_figures -- --persistence 100000 --appendfsync always``.
    """
    install_workspace(session)
    session.run("kv-bench", "--persistence", "1000000", *session.posargs)


@nox.session
def expiry(session: nox.Session) -> None:
    """A million keys with one deadline: the longest PING pause while kv-server expires them.

    Pass another key count after --, e.g. ``nox -s expiry -- 100000``.
    """
    install_workspace(session)
    python = str(Path(session.bin) / "python")
    work = Path(tempfile.mkdtemp(prefix="kv-expiry-"))
    kv, line = _start([python, "-m", "kv_server", "--port", "0", "--pass", "bench", "--dir",
                       str(work / "kv")], re.compile(r"ready on tcp 127\.0\.0\.1:\d+"), work / "kv.log")
    try:
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match
        keys = session.posargs[0] if session.posargs else "1000000"
        session.run("kv-bench", "-p", match[1], "-a", "bench", "--expiry", keys)
    finally:
        kv.send_signal(signal.SIGTERM)
        kv.wait(20)
        shutil.rmtree(work, ignore_errors=True)
