"""Well-typed calls of every command, in random sequences over a few keys.

Random arguments (test_dispatch.py) mostly stop at the argument checks; these
calls pass them, so they reach every command's own code: its index arithmetic,
option handling and type checks against whatever another command left in the
key. Whatever happens, the reply is a value or an error reply, never an
exception out of the dispatcher, and the keyspace's invariants hold.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kv_protocol.commands import COMMANDS, Arg, ArgKind, CommandSpec
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import decode_message
from kv_server._keyspace import KvHash, KvList
from kv_server._state import ServerState
from server_helpers import make_config, new_session

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
    if spec.options is not None:
        for option in draw(st.lists(st.sampled_from(spec.options.options), max_size=3)):
            argv.append(option.word.lower())
            if option.arg is not None:
                argv += draw(_arg(option.arg))
    return argv


any_call = st.sampled_from([s for s in COMMANDS if s.name not in SKIP]).flatmap(calls)


@settings(max_examples=300)
@given(st.lists(any_call, min_size=1, max_size=25))
def test_well_typed_calls_answer_and_keep_the_keyspace_sound(sequence: list[list[Any]]) -> None:
    state = ServerState(make_config())
    session = new_session(state)
    blob = state.dispatcher.execute_batch(session, sequence)
    replies = [decode_message(item) for item in FrameDecoder().feed(blob)]
    assert len(replies) == len(sequence)
    keyspace = state.keyspace
    for key, value in keyspace.data.items():
        assert type(key) in (str, bytes)
        if type(value) in (KvList, KvHash):
            assert value, f"an empty {type(value).__name__} was left at {key!r}"
    assert set(keyspace.expires) <= set(keyspace.data)
