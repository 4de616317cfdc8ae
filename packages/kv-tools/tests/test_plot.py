import importlib.util
import sys
from pathlib import Path

import pytest

from kv_tools import _plot
from kv_tools._bench import main as bench_main
from kv_tools._report import Measurement

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def m(rate: float) -> Measurement:
    return Measurement(rate, 100.0, 150.0, 300.0, 900.0, None)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed (pip install 'kv-tools[plot]')")
def test_plot_writes_a_png_with_kv_beside_redis(tmp_path: Path) -> None:
    path = tmp_path / "bench.png"
    results = {("set", "kv"): [m(60_000)], ("set", "redis"): [m(100_000)],
               ("mset", "kv"): [m(20_000)], ("get", "reference"): [m(70_000)]}
    _plot.plot(path, ["set", "get", "mset"], results, "kv-bench: a test")
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_without_matplotlib_plot_exits_2_and_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def missing() -> None:
        raise _plot.PlotUnavailableError(_plot.INSTALL_HINT)

    monkeypatch.setattr("kv_tools._bench.load_pyplot", missing)
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["-a", "pw", "--plot", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert "pip install 'kv-tools[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_load_pyplot_names_the_extra_when_the_import_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    with pytest.raises(_plot.PlotUnavailableError, match=r"pip install 'kv-tools\[plot\]'"):
        _plot.load_pyplot()
