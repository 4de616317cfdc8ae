"""Pub/sub through the real dispatcher: subscriptions, fan-out into outboxes, limits."""

from __future__ import annotations

from typing import Any

import pytest

from kv_protocol.errors import ServerError, TooBigError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import PUSH, decode_message
from kv_server._pubsub import OUTPUT_LIMIT_REASON
from kv_server._session import Session
from kv_server._state import ServerState
from server_helpers import decode_reply, make_config, new_session


def run(state: ServerState, session: Session, *argv: object) -> Any:
    return decode_reply(state.dispatcher.execute_batch(session, [list(argv)]))


def pushes(session: Session) -> list[tuple[object, ...]]:
    """The pushes queued for a subscriber, taken out of its outbox."""
    assert session.pubsub is not None
    outbox = session.pubsub.outbox
    data = b"".join(outbox.chunks)
    outbox.chunks.clear()
    outbox.sent(len(data))
    found = []
    for item in FrameDecoder().feed(data):
        kind, push = decode_message(item)
        assert kind == PUSH
        found.append((push.kind, *push.data))  # type: ignore[union-attr]
    return found


def test_messages_reach_every_subscriber_in_publish_order_with_their_types(
        state: ServerState) -> None:
    subscribers = [new_session(state) for _ in range(3)]
    publisher = new_session(state)
    for sub in subscribers:
        assert run(state, sub, "SUBSCRIBE", "news", "other") == 2
    payloads: list[object] = [1, 2.5, "text", b"\x00bytes", None, [1, "a"], {"k": [True]}]
    for payload in payloads:
        assert run(state, publisher, "PUBLISH", "news", payload) == 3
    assert run(state, publisher, "PUBLISH", "nobody", 1) == 0
    for sub in subscribers:
        assert pushes(sub) == [("message", "news", payload) for payload in payloads]


def test_patterns_receive_pmessages_and_a_double_subscription_gets_both(
        state: ServerState, session: Session) -> None:
    publisher = new_session(state)
    assert run(state, session, "PSUBSCRIBE", "news.*", b"x?") == 2
    assert run(state, session, "SUBSCRIBE", "news.sport") == 3
    assert run(state, publisher, "PUBLISH", "news.sport", 7) == 2
    assert run(state, publisher, "PUBLISH", b"xy", "b") == 1
    assert pushes(session) == [("message", "news.sport", 7),
                               ("pmessage", "news.*", "news.sport", 7),
                               ("pmessage", b"x?", b"xy", "b")]
    assert run(state, publisher, "PUBSUB", "NUMPAT") == 2
    assert run(state, publisher, "PUBSUB", "CHANNELS") == ["news.sport"]
    assert run(state, publisher, "PUBSUB", "CHANNELS", "x*") == []
    assert run(state, publisher, "PUBSUB", "NUMSUB", "news.sport", "none") == {
        "news.sport": 1, "none": 0}


def test_a_subscribed_connection_runs_only_the_subscribe_commands_and_ping(
        state: ServerState, session: Session) -> None:
    run(state, session, "SET", "k", 1)
    run(state, session, "SUBSCRIBE", "ch")
    with pytest.raises(ServerError, match="'get' is not allowed while subscribed"):
        run(state, session, "GET", "k")
    assert run(state, session, "PING") == "PONG"
    assert run(state, session, "PSUBSCRIBE", "c*") == 2
    assert run(state, session, "UNSUBSCRIBE") == 1
    assert run(state, session, "PUNSUBSCRIBE") == 0
    assert run(state, session, "GET", "k") == 1 and not session.restricted


def test_a_batch_is_checked_command_by_command(state: ServerState, session: Session) -> None:
    frames = FrameDecoder().feed(state.dispatcher.execute_batch(
        session, [["GET", "k"], ["SUBSCRIBE", "ch"], ["GET", "k"], ["UNSUBSCRIBE", "ch"],
                  ["GET", "k"]]))
    assert [decode_message(f)[0] for f in frames] == [0, 0, 1, 0, 0]


def test_unsubscribing_what_is_not_subscribed_changes_nothing(
        state: ServerState, session: Session) -> None:
    assert run(state, session, "UNSUBSCRIBE", "never") == 0
    assert run(state, session, "PUNSUBSCRIBE") == 0
    run(state, session, "SUBSCRIBE", "a", "a", "b")
    assert run(state, session, "UNSUBSCRIBE", "zz") == 2


def test_a_connection_that_ends_is_forgotten(state: ServerState, session: Session) -> None:
    run(state, session, "SUBSCRIBE", "a")
    run(state, session, "PSUBSCRIBE", "*")
    state.release(session)
    assert not state.pubsub.channels and not state.pubsub.patterns
    assert run(state, new_session(state), "PUBLISH", "a", 1) == 0


def test_a_subscriber_past_its_buffer_limit_is_closed_and_holds_nothing() -> None:
    state = ServerState(make_config(pubsub_buffer_limit=4096))
    slow, publisher = new_session(state), new_session(state)
    run(state, slow, "SUBSCRIBE", "ch")
    for _ in range(20):
        run(state, publisher, "PUBLISH", "ch", b"x" * 500)
    assert slow.closing == OUTPUT_LIMIT_REASON
    assert slow.pubsub is not None and not slow.pubsub.outbox.chunks
    assert state.stats.output_buffer_disconnects == 1
    assert run(state, publisher, "PING") == "PONG"


def test_info_and_client_list_describe_subscribers(state: ServerState, session: Session) -> None:
    run(state, session, "SUBSCRIBE", "a", "b")
    run(state, session, "PSUBSCRIBE", "c*")
    admin = new_session(state)
    info = run(state, admin, "INFO")
    assert info["clients"]["pubsub_clients"] == 1
    assert (info["stats"]["pubsub_channels"], info["stats"]["pubsub_patterns"]) == (2, 1)
    [me] = [c for c in run(state, admin, "CLIENT", "LIST") if c["id"] == session.id]
    assert (me["sub"], me["psub"]) == (2, 1)


def test_a_message_too_big_for_a_push_reaches_no_one() -> None:
    state = ServerState(make_config(max_frame_bytes=2048))
    by_channel, by_pattern, publisher = (new_session(state) for _ in range(3))
    run(state, by_channel, "SUBSCRIBE", "ch")
    run(state, by_pattern, "PSUBSCRIBE", "c" + "*" * 300)
    with pytest.raises(TooBigError):
        run(state, publisher, "PUBLISH", "ch", b"x" * 1900)  # fits a command, not the pmessage
    assert pushes(by_channel) == [] and pushes(by_pattern) == []
    assert run(state, publisher, "PUBLISH", "ch", b"x" * 10) == 2
