
import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_protocol.commands import BY_NAME, COMMANDS
from kv_protocol.errors import (
    ArgumentTypeError,
    CommandSyntaxError,
    NotIntegerError,
    ProtoError,
    RemoteProtocolError,
    ServerError,
    TooBigError,
)
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import decode_message
from kv_protocol.values import MAX_VALUE_DEPTH
from kv_server._session import Session
from kv_server._state import ServerState
from protocol_helpers import keys, values
from server_helpers import Call, decode_reply, make_config, new_session


def test_unknown_command(call: Call) -> None:
    with pytest.raises(ServerError, match="unknown command 'NOPE'") as info:
        call("NOPE", 1)
    assert type(info.value) is ServerError and info.value.code == "ERR"


@pytest.mark.parametrize("name", ["get", "GET", "Get", "gEt"])
def test_names_are_case_insensitive(call: Call, name: str) -> None:
    call("SET", "k", 1)
    assert call(name, "k") == 1


def _counts(spec_name: str) -> tuple[int, int | None]:
    spec = BY_NAME[spec_name]
    return spec.min_args, spec.max_args


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
def test_wrong_arity_is_refused_for_every_command(call: Call, spec: object) -> None:
    name = spec.name  # type: ignore[attr-defined]
    words = name.split()
    low, high = _counts(name)
    bad = [low - 1] if low else []
    if high is not None:
        bad.append(high + 1)
    for count in bad:
        with pytest.raises(ServerError, match=f"wrong number of arguments for '{name.lower()}'"):
            call(*words, *(["x"] * count))


def test_odd_mset_is_an_arity_error(call: Call) -> None:
    with pytest.raises(ServerError, match="wrong number of arguments for 'mset'"):
        call("MSET", "a", 1, "b")


@pytest.mark.parametrize(
    ("argv", "error", "match"),
    [
        (["GET", 5], ArgumentTypeError, "'get' argument 'key' must be text or bytes, got int"),
        (["GET", ["k"]], ArgumentTypeError, "got list"),
        (["SET", None, 1], ArgumentTypeError, "got null"),
        (["MSET", "a", 1, 2, 3], ArgumentTypeError, "'mset' argument 'key'"),
        (["DEL", "a", b"b", 3.5], ArgumentTypeError, "got float"),
        (["SET", "k", cbor2.undefined], ArgumentTypeError, "storable value"),
        (["SET", "k", [1, cbor2.CBORSimpleValue(16)]], ArgumentTypeError, "storable value"),
        (["SET", "k", {(1, 2): 1}], ArgumentTypeError, "storable value"),
        (["APPEND", "k", 5], ArgumentTypeError, "'append' argument 'value' must be text or bytes"),
        (["KEYS", 5], ArgumentTypeError, "pattern"),
        (["CLIENT", "SETNAME", b"name"], ArgumentTypeError, "must be text, got bytes"),
        (["CLIENT", "KILL", "ID", "7"], NotIntegerError, "must be a 64-bit integer"),
        (["CLIENT", "KILL", "ID", True], NotIntegerError, "got bool"),
        (["CLIENT", "KILL", "NAME", 7], CommandSyntaxError, "must be the word ID"),
        (["INFO", 5], ArgumentTypeError, "'info' argument 'section' must be text"),
    ],
)
def test_argument_kinds_are_checked(call: Call, argv: list[object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call(*argv)


def test_container_values_pass_the_closer_check(call: Call) -> None:
    value = {"list": [1, 2.5, None, {"b": b"\x00"}], 7: True}
    assert call("SET", "k", value) == "OK"
    assert call("GET", "k") == value
    assert call("MSET", "a", [1], b"b", {"x": []}) == "OK"


def test_subcommands(call: Call) -> None:
    assert call("client", "id") == call("CLIENT", "ID")
    with pytest.raises(ServerError, match="unknown subcommand 'FOO' for 'client'; try one of"):
        call("CLIENT", "FOO")
    with pytest.raises(ServerError, match="unknown subcommand None"):
        call("CLIENT")
    with pytest.raises(ServerError, match="unknown subcommand 5"):
        call("CLIENT", 5)


@pytest.mark.parametrize("argv", [[], "GET", {"cmd": "GET"}, [5, "k"], [b"GET", "k"], [None]])
def test_malformed_command_arrays_are_protocol_errors(
    state: ServerState, session: Session, argv: object
) -> None:
    with pytest.raises(RemoteProtocolError, match="non-empty array that starts with its name"):
        state.dispatcher.execute(session, argv)


def test_batch_answers_commands_before_a_malformed_one_then_proto(
    state: ServerState, session: Session
) -> None:
    blob = state.dispatcher.execute_batch(session, [["SET", "k", 1], 42, ["GET", "k"]])
    items = FrameDecoder().feed(blob)
    assert len(items) == 2
    assert decode_message(items[0]) == (0, "OK")
    _kind, error = decode_message(items[1])
    assert isinstance(error, ProtoError)
    assert session.closing == "protocol error"
    assert state.stats.protocol_errors == 1
    assert "k" in state.keyspace


def test_counters(state: ServerState, session: Session, call: Call) -> None:
    call("SET", "k", 1)
    call("GET", "k")
    with pytest.raises(ServerError):
        call("GET")
    call("SET", "s", [1])
    with pytest.raises(ServerError):
        call("APPEND", "s", "x")
    entries = state.dispatcher.entries
    assert (entries["GET"].calls, entries["GET"].rejected) == (1, 1)
    assert (entries["APPEND"].calls, entries["APPEND"].failed) == (0, 1)
    assert state.stats.error_replies == {"ERR": 1, "WRONGTYPE": 1}
    assert session.last_command is entries["APPEND"]


BIGNUM = 1 << 15000  # its repr() raises: error messages must never need it
argument = values | keys | st.sampled_from(["ID", "id", "default", "*", BIGNUM])
command_array = st.builds(lambda spec, args: [*spec.name.split(), *args],
                          st.sampled_from(COMMANDS), st.lists(argument, max_size=5))
anything = command_array | argument | st.lists(argument, max_size=3)


@given(items=st.lists(anything, min_size=1, max_size=4))
def test_any_batch_gets_replies_never_an_exception(items: list[object]) -> None:
    state = ServerState(make_config())
    session = new_session(state)
    blob = state.dispatcher.execute_batch(session, items)
    replies = FrameDecoder().feed(blob)
    assert 1 <= len(replies) <= len(items)
    for item in replies:
        decode_message(item)
    assert all(type(key) in (str, bytes) for key in state.keyspace)


@given(spec=st.sampled_from(COMMANDS), args=st.lists(argument, max_size=5))
def test_the_fast_check_never_accepts_what_the_exact_check_refuses(
    spec: object, args: list[object]
) -> None:
    state = ServerState(make_config())
    entry = state.dispatcher.entries[spec.name]  # type: ignore[attr-defined]
    argv = [*spec.name.split(), *args]  # type: ignore[attr-defined]
    if entry.fast_check(argv):
        assert entry.check(argv) is None


@pytest.mark.parametrize("argv", [[BIGNUM], ["CLIENT", BIGNUM], ["GET", BIGNUM], ["NOPE" * 10_000]],
                         ids=["name", "subcommand", "key", "long name"])
def test_error_messages_describe_hostile_arguments_safely(
    state: ServerState, session: Session, argv: list[object]
) -> None:
    blob = state.dispatcher.execute_batch(session, [argv])
    [(kind, error)] = [decode_message(item) for item in FrameDecoder().feed(blob)]
    assert kind == 1 and len(str(error)) < 300


def test_values_nested_too_deep_are_refused(call: Call) -> None:
    deep: object = 1
    for _ in range(MAX_VALUE_DEPTH):
        deep = [deep]
    assert call("SET", "ok", deep) == "OK"
    assert call("MGET", "ok") == [deep]  # the reply, one level deeper, still decodes
    with pytest.raises(ArgumentTypeError, match=f"nested at most {MAX_VALUE_DEPTH} deep"):
        call("SET", "k", [deep])


def test_replies_too_big_for_a_frame_answer_toobig() -> None:
    state = ServerState(make_config(max_frame_bytes=4096))
    session = new_session(state)

    def call(*argv: object) -> object:
        return decode_reply(state.dispatcher.execute(session, list(argv)))

    call("SET", "a", b"x" * 3000)
    call("SET", "b", b"y" * 3000)
    with pytest.raises(TooBigError, match="exceeds the frame limit of 4096"):
        call("MGET", "a", "b")
    with pytest.raises(TooBigError, match="APPEND would make a value of 6000 bytes"):
        call("APPEND", "a", b"z" * 3000)
    assert call("STRLEN", "a") == 3000


def test_a_session_that_kills_itself_runs_nothing_after(state: ServerState, session: Session) -> None:
    blob = state.dispatcher.execute_batch(session, [["CLIENT", "KILL", "ID", session.id], ["SET", "k", 1]])
    assert [decode_message(i) for i in FrameDecoder().feed(blob)] == [(0, 1)]
    assert "k" not in state.keyspace
