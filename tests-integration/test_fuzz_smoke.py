"""The fuzz/ harnesses in CI, without atheris: seeds, reproducers and a few thousand mutants.

``nox -s fuzz`` runs the harnesses coverage-guided for minutes; this runs the same
``TestOneInput`` functions directly, so every CI run checks that the committed
seeds still pass (a change to a format shows up here first), that saved crash
reproducers stay fixed, and that hypothesis-made and mutated inputs find nothing.
A harness that swallowed every exception would pass all that, so the last test
checks that each one lets an undocumented exception escape.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ_DIR: Final = Path(__file__).parents[1] / "fuzz"
if str(FUZZ_DIR) not in sys.path:  # the harnesses import their shared module by name
    sys.path.insert(0, str(FUZZ_DIR))

TARGETS: Final = ("frames", "handshake", "dispatch", "files")
# Per target and strategy: about 3,000 inputs in all, 3 s (the dispatch and start-up
# harnesses cost most: a batch and its replay, files in /dev/shm); `nox -s slow`
# (HYPOTHESIS_PROFILE=long) runs ten times as many.
EXAMPLES: Final = 4_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 400
KNOWN_CRASHES: Final[dict[str, str]] = {}
"""Reproducers in fuzz/crashes/ of bugs not fixed yet: file name -> reason (strict xfail)."""


def harness(target: str) -> ModuleType:
    return importlib.import_module(f"fuzz_{target}")


def seeds(target: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((FUZZ_DIR / "corpus" / target).glob("seed-*"))]


def test_the_committed_corpus_is_what_make_corpus_writes() -> None:
    make_corpus = importlib.import_module("make_corpus")
    for target, found in make_corpus.seeds().items():
        on_disk = {path.name: path.read_bytes() for path in (FUZZ_DIR / "corpus" / target).glob("seed-*")}
        assert on_disk == found, f"fuzz/corpus/{target} is stale: run `python fuzz/make_corpus.py`"
    assert make_corpus.DICTIONARY.read_bytes() == make_corpus.dictionary(), "run `python fuzz/make_corpus.py`"


@pytest.mark.parametrize("target", TARGETS)
def test_every_seed_passes(target: str) -> None:
    found = seeds(target)
    assert found, f"no seeds in fuzz/corpus/{target}"
    for data in found:
        harness(target).TestOneInput(data)


def _reproducers() -> list[Any]:
    files = sorted(path for path in (FUZZ_DIR / "crashes").iterdir() if path.suffix != ".md")
    marks = {path.name: [pytest.mark.xfail(strict=True, reason=KNOWN_CRASHES[path.name])]
             for path in files if path.name in KNOWN_CRASHES}
    params = [pytest.param(path, marks=marks.get(path.name, ()), id=path.name) for path in files]
    return params or [pytest.param(None, marks=pytest.mark.skip(reason="no saved reproducers"))]


@pytest.mark.parametrize("path", _reproducers())
def test_saved_crash_reproducers(path: Path) -> None:
    target = path.name.split("-", 1)[0]
    harness(target).TestOneInput(path.read_bytes())


@st.composite
def mutants(draw: st.DrawFn, target: str) -> bytes:
    """A seed with a few of libFuzzer's mutations: flips, bytes, inserts, cuts, copies."""
    data = bytearray(draw(st.sampled_from(seeds(target))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "byte", "insert", "delete", "duplicate", "truncate"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and at < len(data):
            data[at] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, ord("\n"), ord(" "), 0x9F, 0xBF]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("target", TARGETS)
def test_mutated_seeds_find_nothing(target: str) -> None:
    run = harness(target).TestOneInput

    @settings(max_examples=EXAMPLES, database=None)
    @given(mutants(target))
    def check(data: bytes) -> None:
        run(data)

    check()


@pytest.mark.parametrize("target", TARGETS)
def test_arbitrary_bytes_find_nothing(target: str) -> None:
    run = harness(target).TestOneInput

    @settings(max_examples=EXAMPLES, database=None)
    @given(st.binary(max_size=300))
    def check(data: bytes) -> None:
        run(data)

    check()


def _break(owner: type, name: str) -> Callable[[pytest.MonkeyPatch], None]:
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        def boom(*args: object, **kwargs: object) -> None:
            raise KeyError("an undocumented exception")

        monkeypatch.setattr(owner, name, boom)

    return patch


def _sabotage(target: str) -> Callable[[pytest.MonkeyPatch], None]:
    from kv_protocol.framing import FrameDecoder
    from kv_protocol.handshake import Hello
    from kv_protocol.records.aof import AofReader
    from kv_server._dispatch import Dispatcher

    owner, name = {"frames": (FrameDecoder, "feed"), "handshake": (Hello, "from_wire"),
                   "dispatch": (Dispatcher, "entry_for"), "files": (AofReader, "feed")}[target]
    return _break(owner, name)


@pytest.mark.parametrize("target", TARGETS)
def test_a_harness_lets_undocumented_exceptions_escape(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    run = harness(target).TestOneInput
    _sabotage(target)(monkeypatch)
    escaped = 0
    for data in seeds(target):
        try:
            run(data)
        except KeyError:
            escaped += 1
    assert escaped, f"fuzz_{target} swallowed a KeyError from the code it fuzzes"
