"""kv-bench --persistence: the figures' arithmetic, and one small run against real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kv_tools import _persistence_figures
from kv_tools._bench import main as bench_main
from kv_tools._persistence_figures import (
    Loading,
    PersistenceReport,
    Pings,
    SnapshotFigures,
    measure_persistence,
)

SMOKE_KEYS = 3000  # several MSETs and SET batches, yet a run of about two seconds


def test_pings_are_reported_in_milliseconds() -> None:
    pings = Pings.of([0.001] * 99 + [0.050])
    assert (pings.count, pings.max_ms, pings.p50_ms) == (100, 50.0, 1.0)
    assert 1.0 < pings.p99_ms <= 50.0
    assert Pings.of([0.002]) == Pings(1, 2.0, 2.0, 2.0)
    with pytest.raises(RuntimeError, match="no PING"):
        Pings.of([])


def report() -> PersistenceReport:
    pings = Pings(10, 1.0, 0.5, 0.1)
    snapshots = SnapshotFigures(
        fill_s=2.0, rss_bytes=200 * 2**20, baseline=pings, during=Pings(10, 9.0, 3.0, 0.1),
        bgsave_s=3.5, bgsave_wall_s=3.6, fork_ms=4.25,
        plaintext=Loading("plaintext", 1000, 2.0, 2**20, 2.2, 1.0),
        binary=Loading("binary", 1000, 1.0, 2**19, 1.2, 1.1))
    return PersistenceReport(1000, "everysec", snapshots, Loading("aof", 1000, 3.0, 2**21, 3.3, 4.0))


def test_rates() -> None:
    r = report()
    assert r.snapshots.plaintext.per_s == 500 and r.snapshots.binary.per_s == 1000
    assert r.replay.per_s == pytest.approx(333.33, abs=0.01)
    assert Loading("aof", 5, 0.0, 0, 0.1, 0.1).per_s == float("inf")


def test_render_shows_every_figure() -> None:
    text = report().render()
    assert "1,000 string keys" in text and "appendfsync everysec" in text
    assert "PING during BGSAVE   max 9.00 ms, p99 3.00 ms" in text
    assert "BGSAVE               3.50 s" in text and "fork 4.2 ms" in text
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()
            if line.split()[:1] in (["plaintext"], ["binary"], ["aof"])}
    assert rows["plaintext"] == ["1,000", "1.0", "1.00", "2.00", "500", "2.20"]
    assert rows["binary"][4] == "1,000" and rows["aof"][4] == "333"


def test_a_small_run_against_real_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_persistence_figures, "BASELINE_S", 0.2)
    r = measure_persistence(SMOKE_KEYS, appendfsync="always", parent=tmp_path)
    s = r.snapshots
    assert s.baseline.count > 0 and s.during.count > 0 and s.bgsave_s > 0
    assert (s.plaintext.items, s.binary.items, r.replay.items) == (SMOKE_KEYS,) * 3
    assert s.binary.file_bytes < s.plaintext.file_bytes
    assert r.replay.file_bytes > s.plaintext.file_bytes  # a record holds more than an entry
    assert list(tmp_path.iterdir()) == []  # the temporary directory is gone


def test_the_mode_needs_no_password_but_some_keys(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KV_PASS", raising=False)
    for argv, message in ((["--persistence", "0"], "at least 1 key"),
                          (["--persistence", "5", "--expiry", "5", "-a", "pw"], "separate runs"),
                          (["--persistence", "5", "--appendfsync", "sometimes"], "invalid choice")):
        with pytest.raises(SystemExit) as exit_info:
            bench_main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err


def test_a_failing_run_exits_1(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                               tmp_path: Path) -> None:
    def fail(keys: int, *, appendfsync: str, parent: Path | None) -> PersistenceReport:
        raise RuntimeError(f"kv-server was not ready ({keys}, {appendfsync}, {parent})")

    monkeypatch.setattr("kv_tools._bench.measure_persistence", fail)
    assert bench_main(["--persistence", "7", "--appendfsync", "no", "--dir", str(tmp_path)]) == 1
    assert f"kv-bench: kv-server was not ready (7, no, {tmp_path})" in capsys.readouterr().err
