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

from command_strategies import any_call
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import decode_message
from kv_server._keyspace import KvHash, KvList
from kv_server._state import ServerState
from server_helpers import make_config, new_session, run_to_end


@settings(max_examples=300)
@given(st.lists(any_call, min_size=1, max_size=25))
def test_well_typed_calls_answer_and_keep_the_keyspace_sound(sequence: list[list[Any]]) -> None:
    state = ServerState(make_config())
    session = new_session(state)
    blob = run_to_end(state, session, sequence)
    replies = [decode_message(item) for item in FrameDecoder().feed(blob)]
    assert len(replies) == len(sequence)
    keyspace = state.keyspace
    for key, value in keyspace.data.items():
        assert type(key) in (str, bytes)
        if type(value) in (KvList, KvHash):
            assert value, f"an empty {type(value).__name__} was left at {key!r}"
    assert set(keyspace.expires) <= set(keyspace.data)
    state.release(session)
    assert not keyspace.watchers and not state.blocking.queues and not state.pubsub.channels
