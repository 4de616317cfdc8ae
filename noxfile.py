"""Sessions: tests and lint run by default (what CI runs); docs, bench and slow on demand.

    nox                 tests + lint
    nox -s tests -- -k glob    pass pytest arguments after --
    nox -s docs         regenerate docs/commands.md from the command table
    nox -s bench        kv-server vs redis-server vs the reference server, side by side
    nox -s expiry       the longest pause while a million keys expire together
    nox -s slow         the long variants (more hypothesis examples)
"""

from __future__ import annotations

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
PACKAGES = [f"packages/{name}" for name in ("kv-protocol", "kv-server", "kv-client", "kv-tools")]
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
MAX_MODULE_LINES = 400
# The reference servers of ../shared/bench, when this checkout sits beside them.
REFERENCE_SERVER = Path(os.environ.get("KV_REFERENCE_SERVER", ROOT.parent / "shared/bench/server_trio.py"))

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"


def install_workspace(session: nox.Session, *groups: str) -> None:
    editables = [arg for package in PACKAGES for arg in ("-e", package)]
    session.install(*editables, *nox.project.dependency_groups(PYPROJECT, *groups))


def ensure_redis_server(session: nox.Session) -> None:
    """Install Debian's redis-server when possible: tests and benchmarks compare against it."""
    if shutil.which("redis-server"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.log("redis-server is missing: installing Debian's package")
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        try:
            session.run("apt-get", "update", "-qq", external=True, env=env)
            session.run("apt-get", "install", "-y", "-qq", "redis-server", external=True, env=env)
        except nox.command.CommandFailed:
            session.warn("installing redis-server failed; the comparisons with it are skipped")
    else:
        session.warn("redis-server is not installed and cannot be installed here (needs root and "
                     "apt-get); the comparisons with it are skipped")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit and integration tests of every package."""
    install_workspace(session, "test")
    ensure_redis_server(session)
    session.run("pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """The same tests with many more generated examples."""
    install_workspace(session, "test")
    ensure_redis_server(session)
    session.run("pytest", *session.posargs, env={"HYPOTHESIS_PROFILE": "long"})


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
        lines = len(path.read_text().splitlines())
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


@nox.session
def bench(session: nox.Session) -> None:
    """kv-bench at pipeline 1 and 16: kv-server beside redis-server and the reference server.

    Pass kv-bench options after --, e.g. ``nox -s bench -- --repeat 3``.
    """
    install_workspace(session)
    ensure_redis_server(session)
    python = str(Path(session.bin) / "python")
    work = Path(tempfile.mkdtemp(prefix="kv-bench-"))
    procs: list[subprocess.Popen[str]] = []
    try:
        kv, line = _start([python, "-m", "kv_server", "--port", "0", "--pass", "bench", "--dir",
                           str(work / "kv")], re.compile(r"ready on tcp 127\.0\.0\.1:\d+"), work / "kv.log")
        procs.append(kv)
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert match
        args = ["-p", match[1], "-a", "bench"]
        if shutil.which("redis-server"):
            port = _free_port()
            redis, _ = _start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(work)], None, work / "redis.log")
            procs.append(redis)
            _wait_for_port(redis, port)
            args += ["--redis", f"127.0.0.1:{port}"]
        if REFERENCE_SERVER.exists():
            port = _free_port()
            ref, _ = _start([python, str(REFERENCE_SERVER), "--mode", "lowlevel", "--port", str(port)],
                            None, work / "reference.log")
            procs.append(ref)
            _wait_for_port(ref, port)
            args += ["--reference", f"127.0.0.1:{port}", "--reference-pid", str(ref.pid)]
        else:
            session.warn(f"no reference server at {REFERENCE_SERVER} (set KV_REFERENCE_SERVER)")
        for pipeline, requests in (("1", "200000"), ("16", "2000000")):
            session.run("kv-bench", *args, "-P", pipeline, "-n", requests, "--seconds", "20",
                        *session.posargs)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    if sys.platform != "linux":
        session.warn("server CPU per request is read from /proc and is only shown on Linux")


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
