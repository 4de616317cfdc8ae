"""A progress bar for tools that stream a large file: shown on a terminal only.

Rules of this module:

1. The bar goes to stderr and only when stderr is a TTY, so stdout stays a clean,
   parseable report and logs or pipes never fill with carriage returns (as
   ``rsync --info=progress2`` and ``pv`` behave).
2. Small files get no bar: a bar that flashes for a tenth of a second is noise.
3. The caller reports bytes as it reads them; the bar counts bytes, because a file's
   size is known before its records are.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from tqdm import tqdm

# About a second of reading on a laptop disk: below this a file is checked before a
# bar would be worth looking at (rule 2).
PROGRESS_MIN_BYTES: Final = 64 * 1024 * 1024


def _ignore(_count: int) -> None:
    return None


@contextmanager
def byte_progress(total_bytes: int, label: str) -> Iterator[Callable[[int], object]]:
    """Show a byte-count bar while the ``with`` block runs; yield ``advance(n_bytes)``.

    Args:
        total_bytes: the file's size, the bar's 100 %.
        label: what is being read, shown before the bar (a file name).

    Returns:
        A context manager whose value is called with each chunk's length. When no bar
        is shown (not a TTY, or a small file) it is a no-op, so callers never branch.
    """
    if total_bytes < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield _ignore
        return
    bar = tqdm(total=total_bytes, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
               file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()
