"""Run every atheris harness for a while and report executions and crashes (``nox -s fuzz``).

Usage: ``python fuzz/run.py [--seconds N] [TARGET ...]``; N defaults to the
environment's KV_FUZZ_SECONDS, else 60. Each harness runs in its own process, one
after the other (they compete for the same cores otherwise), with:

- ``-max_total_time=N`` and ``-timeout`` (a single input slower than that is a
  hang and counts as a crash);
- ``-rss_limit_mb`` (an input that makes the process grow past it counts as a
  crash: memory must stay bounded whatever the bytes);
- a scratch corpus directory first, so that new inputs go there and the committed
  seeds in fuzz/corpus/<target> stay as make_corpus.py wrote them;
- ``-artifact_prefix=fuzz/crashes/<target>-``: a crashing input is saved there, to
  be kept as a reproducer (``python fuzz/fuzz_<target>.py fuzz/crashes/<file>``).

Exit status 1 if any harness crashed, so CI fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness import CORPUS_DIR, CRASHES_DIR, FUZZ_DIR

TARGETS: Final = ("frames", "handshake", "dispatch", "files")
DEFAULT_SECONDS: Final = 60
# Seconds one input may take: the slowest legitimate input (a start-up on files of a
# few KiB, PBKDF2 at the minimum count) takes milliseconds.
INPUT_TIMEOUT_S: Final = 10
# The harness process is about 60 MB; 1 GiB leaves room for what one input may
# legitimately build (a 4 KiB input cannot need more) and catches runaway growth.
RSS_LIMIT_MB: Final = 1024
# Inputs longer than a few frames or records add time, not paths; start-up files
# get more room so a snapshot and an AOF fit together.
MAX_LEN: Final = {"files": 16384}
DEFAULT_MAX_LEN: Final = 4096
# Wall-clock margin over -max_total_time for instrumentation, start-up and the
# final merge; a harness still running after it is killed and reported.
GRACE_S: Final = 120


@dataclass
class Outcome:
    target: str
    executions: int
    per_second: int
    new_inputs: int
    peak_rss_mb: int
    crashed: bool
    artifacts: list[str]


def _stat(log: str, name: str) -> int:
    match = re.search(rf"stat::{name}:\s+(\d+)", log)
    if match:
        return int(match[1])
    done = re.search(r"Done (\d+) runs", log) if name == "number_of_executed_units" else None
    if done:
        return int(done[1])
    runs = re.findall(r"^#(\d+)\s", log, re.M)  # a crash stops before the final stats
    return int(runs[-1]) if runs and name == "number_of_executed_units" else 0


def run_one(target: str, seconds: int, log_dir: Path) -> Outcome:
    work = Path(tempfile.mkdtemp(prefix=f"kv-fuzz-{target}-"))
    CRASHES_DIR.mkdir(exist_ok=True)
    command = [sys.executable, str(FUZZ_DIR / f"fuzz_{target}.py"), f"-max_total_time={seconds}",
               f"-timeout={INPUT_TIMEOUT_S}", f"-rss_limit_mb={RSS_LIMIT_MB}",
               f"-max_len={MAX_LEN.get(target, DEFAULT_MAX_LEN)}", "-print_final_stats=1",
               f"-artifact_prefix={CRASHES_DIR}/{target}-"]
    dictionary = FUZZ_DIR / f"{target}.dict"
    if dictionary.exists():
        command.append(f"-dict={dictionary}")
    command += [str(work), str(CORPUS_DIR / target)]
    log_path = log_dir / f"{target}.log"
    print(f"fuzz: {target} for {seconds} s (log {log_path})", flush=True)
    with log_path.open("w") as out:
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + GRACE_S,
                                  cwd=FUZZ_DIR.parent, check=False)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log = log_path.read_text(errors="replace")
    artifacts = re.findall(r"Test unit written to (\S+)", log)
    crashed = code != 0 or bool(artifacts)
    if crashed:
        tail = "\n".join(log.splitlines()[-40:])
        print(f"fuzz: {target} CRASHED (exit {code}); last lines of its log:\n{tail}", flush=True)
    return Outcome(target, _stat(log, "number_of_executed_units"), _stat(log, "average_exec_per_sec"),
                   _stat(log, "new_units_added"), _stat(log, "peak_rss_mb"), crashed, artifacts)


def table(outcomes: list[Outcome]) -> str:
    lines = [f"{'target':10} {'executions':>11} {'exec/s':>8} {'new inputs':>11} {'peak MB':>8}  crashes"]
    for o in outcomes:
        crashes = ", ".join(o.artifacts) or ("yes (no artifact: see log)" if o.crashed else "0")
        lines.append(f"{o.target:10} {o.executions:>11,} {o.per_second:>8,} {o.new_inputs:>11,} "
                     f"{o.peak_rss_mb:>8}  {crashes}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    seconds = int(os.environ.get("KV_FUZZ_SECONDS", DEFAULT_SECONDS))
    parser.add_argument("--seconds", type=int, default=seconds)
    # No choices=: argparse before 3.12 checks an empty list against them and refuses it.
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {', '.join(sorted(unknown))}; choose from {', '.join(TARGETS)}")
    log_dir = Path(tempfile.mkdtemp(prefix="kv-fuzz-logs-"))
    outcomes = [run_one(target, args.seconds, log_dir) for target in args.targets or TARGETS]
    print(table(outcomes), flush=True)
    return 1 if any(o.crashed for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
