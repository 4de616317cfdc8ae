"""``kv-bench --plot FILE.png``: requests/s and latency per test, kv beside the others.

matplotlib is an optional extra (``pip install 'kv-tools[plot]'``), imported only
when a plot is asked for, so kv-bench itself starts without it (as httpx keeps its
CLI's libraries in ``httpx[cli]``). The Agg backend draws to a file with no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ._report import SERVERS, Results, medians

INSTALL_HINT: Final = "--plot needs matplotlib: pip install 'kv-tools[plot]'"
COLOURS: Final = {"kv": "#1f77b4", "redis": "#d62728", "reference": "#7f7f7f"}
FIGURE_SIZE_IN: Final = (11.0, 4.5)  # two panels side by side, readable in a README
DPI: Final = 100
LEGEND_ROOM: Final = 1.2  # headroom over the tallest bar or whisker, for the legend


class PlotUnavailableError(RuntimeError):
    """matplotlib is not installed; the message says how to get it."""


def load_pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, or PlotUnavailableError.

    Checked before any load runs, so that a missing extra costs no benchmark.
    """
    try:
        import matplotlib  # optional extra: imported only when plotting

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailableError(INSTALL_HINT) from None
    return plt


def plot(path: Path, tests: Sequence[str], results: Results, title: str) -> None:
    """Write a PNG of two panels: requests/s per test, and p50 (bar) and p99 (whisker) latency.

    Servers stand side by side within each test, kv first; a server that lacks a
    test has no bar there.
    """
    plt = load_pyplot()
    rows = {(test, label): m for test, label, m in medians(tests, results)}
    labels = [label for label in SERVERS if any(key[1] == label for key in rows)]
    width = 0.8 / len(labels)
    figure, (rate_axes, latency_axes) = plt.subplots(1, 2, figsize=FIGURE_SIZE_IN, dpi=DPI)
    for offset, label in enumerate(labels):
        xs = [i + (offset - (len(labels) - 1) / 2) * width for i, test in enumerate(tests)
              if (test, label) in rows]
        present = [rows[(test, label)] for test in tests if (test, label) in rows]
        colour = COLOURS[label]
        rate_axes.bar(xs, [m.requests_per_s for m in present], width, label=label, color=colour)
        p50 = [m.p50_us / 1000 for m in present]
        above = [max(0.0, (m.p99_us - m.p50_us) / 1000) for m in present]
        latency_axes.bar(xs, p50, width, yerr=[[0.0] * len(p50), above], capsize=3,
                         label=f"{label} p50 (whisker: p99)", color=colour)
    for axes, ylabel in ((rate_axes, "requests/s"), (latency_axes, "latency, ms")):
        axes.set_xticks(range(len(tests)), [test.upper() for test in tests], rotation=45)
        axes.set_ylabel(ylabel)
        axes.grid(axis="y", alpha=0.3)
        axes.set_ylim(0, axes.get_ylim()[1] * LEGEND_ROOM)  # the legend sits above the bars
        axes.legend(fontsize="small", loc="upper center", ncols=len(labels))
    rate_axes.yaxis.set_major_formatter(lambda value, _: f"{value:,.0f}")
    rate_axes.set_title("throughput per test")
    latency_axes.set_title("latency per batch: p50, p99")
    figure.suptitle(title, fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
