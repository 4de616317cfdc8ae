"""Hypothesis strategies for well-typed calls of every command in the table."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kv_protocol.commands import COMMANDS, Arg, ArgKind, CommandSpec

KEYS = st.sampled_from(["a", "b", b"a", "c"])
INTEGERS = st.integers(-3, 3) | st.sampled_from([2**63 - 1, -(2**63), 2**64, -(2**70), 10**6])
SCALARS = (st.none() | st.booleans() | INTEGERS | st.floats(allow_nan=True)
           | st.text(max_size=4) | st.binary(max_size=4))
VALUES = SCALARS | st.lists(SCALARS, max_size=3) | st.dictionaries(st.text(max_size=2), SCALARS,
                                                                   max_size=2)
BY_KIND: dict[ArgKind, st.SearchStrategy[Any]] = {
    ArgKind.KEY: KEYS,
    ArgKind.VALUE: VALUES,
    ArgKind.STRING: st.sampled_from(["f", "g", b"f", "", "é"]),
    ArgKind.TEXT: st.sampled_from(["string", "list", "hash", "x", "all"]),
    ArgKind.INTEGER: INTEGERS,
    ArgKind.NUMBER: INTEGERS | st.floats(-1e3, 1e3) | st.sampled_from([1e308, float("inf")]),
    ArgKind.PATTERN: st.sampled_from(["*", "a*", "[ab]", b"?"]),
}
SKIP = {"CLIENT KILL", "FLUSHALL"}  # covered elsewhere; here they would only end the sequence


def _arg(arg: Arg) -> st.SearchStrategy[list[Any]]:
    if arg.kind is ArgKind.TOKEN:
        return st.just([arg.name])
    if arg.kind is ArgKind.CHOICE:
        return st.sampled_from(arg.choices).map(lambda word: [word])
    return BY_KIND[arg.kind].map(lambda value: [value])


@st.composite
def calls(draw: st.DrawFn, spec: CommandSpec) -> list[Any]:
    argv: list[Any] = spec.name.split()
    required = spec.positional[:spec.min_args] if not spec.tail else spec.positional
    for arg in required:
        argv += draw(_arg(arg))
    for arg in spec.positional[len(required):]:
        if draw(st.booleans()):
            argv += draw(_arg(arg))
    if spec.tail:
        for _ in range(draw(st.integers(0, 2))):
            for arg in spec.tail:
                argv += draw(_arg(arg))
    for arg in spec.trailing:
        argv += draw(_arg(arg))
    if spec.options is not None:
        for option in draw(st.lists(st.sampled_from(spec.options.options), max_size=3)):
            argv.append(option.word.lower())
            if option.arg is not None:
                argv += draw(_arg(option.arg))
    return argv


any_call = st.sampled_from([s for s in COMMANDS if s.name not in SKIP]).flatmap(calls)
