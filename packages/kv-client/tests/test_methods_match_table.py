"""The client's methods and the command table cannot drift apart."""

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from kv_client._commands import CONNECTION_STATE, Commands, method_name, refuse_connection_state
from kv_protocol.commands import COMMANDS, CommandSpec, Reply, predicate, resolve
from kv_protocol.errors import LocalProtocolError

HELPERS = {"scan_iter"}
WITH_METHODS = [spec for spec in COMMANDS if spec.name not in CONNECTION_STATE]
"""The table's commands but those that change their connection's state."""


def command_methods() -> dict[str, Any]:
    """Every public method of Commands, the mixins' included (as Python resolves them)."""
    found: dict[str, Any] = {}
    for cls in reversed(Commands.__mro__):
        for name, member in vars(cls).items():
            if inspect.isfunction(member) and not name.startswith("_") and name not in HELPERS:
                found[name] = member
    return found


def test_every_command_has_a_method_and_every_method_a_command() -> None:
    assert set(command_methods()) == {method_name(spec.name) for spec in WITH_METHODS}


def test_the_commands_without_a_method_are_in_the_table_and_say_where_they_are() -> None:
    assert CONNECTION_STATE.keys() <= {spec.name for spec in COMMANDS}
    assert all(CONNECTION_STATE.values())


@pytest.mark.parametrize("name", sorted(CONNECTION_STATE))
def test_commands_that_change_the_connections_state_are_refused_by_name(name: str) -> None:
    with pytest.raises(LocalProtocolError, match=f"{name} changes the state of its connection"):
        refuse_connection_state((name.lower(), "x"))
    refuse_connection_state(("PUBLISH", "ch", 1))
    refuse_connection_state((b"MULTI",))  # not a name: the server says what is wrong


def test_no_mixin_shadows_another() -> None:
    defined: dict[str, str] = {}
    for cls in Commands.__mro__:
        for name, member in vars(cls).items():
            if inspect.isfunction(member) and not name.startswith("_"):
                assert name not in defined, f"{name} is defined in {defined[name]} and {cls.__name__}"
                defined[name] = cls.__name__


@pytest.mark.parametrize("spec", WITH_METHODS, ids=lambda s: s.name)
def test_docstring_is_the_tables_summary(spec: Any) -> None:
    assert command_methods()[method_name(spec.name)].__doc__ == spec.summary


# A plausible reply of each kind, so that the methods' conversions run.
REPLIES: dict[Reply, object] = {Reply.STATUS: "OK", Reply.VALUE: None, Reply.INTEGER: 1,
                                Reply.TEXT: "string", Reply.LIST: [], Reply.MAP: {}}
SPECIAL_REPLIES: dict[str, object] = {"SET": "OK", "SCAN": [0, []], "INCRBYFLOAT": 1.5,
                                      "HINCRBYFLOAT": 1.5}


class Recorder(Commands):
    """Records each command array instead of sending it; answers from ``replies`` first."""

    def __init__(self, *replies: object) -> None:
        self.sent: list[tuple[object, ...]] = []
        self.replies = list(replies)

    def _call(self, convert: Callable[[Any], Any], *args: object) -> Any:
        self.sent.append(args)
        if self.replies:
            return convert(self.replies.pop(0))
        spec = resolve(args)
        if spec is None:
            return convert("OK")
        return convert(SPECIAL_REPLIES.get(spec.name, REPLIES[spec.reply]))


def table_error(argv: Sequence[object]) -> str | None:
    """Why the server would refuse ``argv`` before running it (as kv_server._dispatch checks)."""
    spec = resolve(argv)
    if spec is None:
        return f"{argv!r} names no command"
    argc = len(argv) - spec.words
    if not spec.check_arity(argc):
        return f"{argv!r}: {argc} arguments is a wrong count for {spec.name}"
    for index, arg in enumerate(argv[spec.words:]):
        declared = spec.arg_at(index, argc)
        if declared is not spec.options and not predicate(declared)(arg):
            return f"{argv!r}: argument {index} is not a valid {declared.name}"
    if spec.options is not None and argc > len(spec.positional):
        try:
            spec.parse_options(argv)
        except Exception as exc:
            return f"{argv!r}: {exc}"
    return None


SYNTAX_CASES: list[tuple[Callable[[Recorder], object], tuple[object, ...]]] = [
    (lambda c: c.ping(), ("PING",)),
    (lambda c: c.ping(None), ("PING", None)),
    (lambda c: c.set("k", 1), ("SET", "k", 1)),
    (lambda c: c.set("k", 1, ex=10, nx=True, get=True), ("SET", "k", 1, "EX", 10, "NX", "GET")),
    (lambda c: c.set("k", 1, px=0), ("SET", "k", 1, "PX", 0)),
    (lambda c: c.set("k", 1, pxat=1, xx=True), ("SET", "k", 1, "PXAT", 1, "XX")),
    (lambda c: c.set("k", 1, keepttl=True), ("SET", "k", 1, "KEEPTTL")),
    (lambda c: c.getex("k"), ("GETEX", "k")),
    (lambda c: c.getex("k", persist=True), ("GETEX", "k", "PERSIST")),
    (lambda c: c.getex("k", exat=1700000000), ("GETEX", "k", "EXAT", 1700000000)),
    (lambda c: c.setex("k", 10, [1]), ("SETEX", "k", 10, [1])),
    (lambda c: c.mset({"a": 1, b"b": [2]}), ("MSET", "a", 1, b"b", [2])),
    (lambda c: c.mget("a", "b"), ("MGET", "a", "b")),
    (lambda c: c.incrbyfloat("k", 0.5), ("INCRBYFLOAT", "k", 0.5)),
    (lambda c: c.delete("a", "b"), ("DEL", "a", "b")),
    (lambda c: c.keys(), ("KEYS", "*")),
    (lambda c: c.scan(), ("SCAN", 0)),
    (lambda c: c.scan(7, match="user:*", count=100, type="hash"),
     ("SCAN", 7, "MATCH", "user:*", "COUNT", 100, "TYPE", "hash")),
    (lambda c: c.copy("a", "b"), ("COPY", "a", "b")),
    (lambda c: c.copy("a", "b", replace=True), ("COPY", "a", "b", "REPLACE")),
    (lambda c: c.object_encoding("k"), ("OBJECT", "ENCODING", "k")),
    (lambda c: c.expire("k", 10), ("EXPIRE", "k", 10)),
    (lambda c: c.expire("k", 10, "GT"), ("EXPIRE", "k", 10, "GT")),
    (lambda c: c.pexpireat("k", 1700000000000, condition="NX"),
     ("PEXPIREAT", "k", 1700000000000, "NX")),
    (lambda c: c.lpush("q", 1, "two", None), ("LPUSH", "q", 1, "two", None)),
    (lambda c: c.lpop("q"), ("LPOP", "q")),
    (lambda c: c.rpop("q", 2), ("RPOP", "q", 2)),
    (lambda c: c.lpos("q", "x"), ("LPOS", "q", "x")),
    (lambda c: c.lpos("q", "x", rank=-1, count=0, maxlen=100),
     ("LPOS", "q", "x", "RANK", -1, "COUNT", 0, "MAXLEN", 100)),
    (lambda c: c.linsert("q", "BEFORE", "x", "y"), ("LINSERT", "q", "BEFORE", "x", "y")),
    (lambda c: c.lmove("a", "b"), ("LMOVE", "a", "b", "LEFT", "RIGHT")),
    (lambda c: c.lmove("a", "b", "RIGHT", "LEFT"), ("LMOVE", "a", "b", "RIGHT", "LEFT")),
    (lambda c: c.hset("h", {"f": 1, b"g": {"x": [1]}}), ("HSET", "h", "f", 1, b"g", {"x": [1]})),
    (lambda c: c.hmget("h", "f", "g"), ("HMGET", "h", "f", "g")),
    (lambda c: c.hincrbyfloat("h", "f", 2), ("HINCRBYFLOAT", "h", "f", 2)),
    (lambda c: c.info("server", "stats"), ("INFO", "server", "stats")),
    (lambda c: c.client_kill(3, 4), ("CLIENT", "KILL", "ID", 3, 4)),
    (lambda c: c.client_setname("n"), ("CLIENT", "SETNAME", "n")),
    (lambda c: c.blpop("q"), ("BLPOP", "q", 0)),
    (lambda c: c.blpop(["a", b"b"], 1.5), ("BLPOP", "a", b"b", 1.5)),
    (lambda c: c.brpop(b"q", timeout=2), ("BRPOP", b"q", 2)),
    (lambda c: c.blmove("a", "b", 0), ("BLMOVE", "a", "b", "LEFT", "RIGHT", 0)),
    (lambda c: c.blmove("a", "b", 3, "RIGHT", "LEFT"), ("BLMOVE", "a", "b", "RIGHT", "LEFT", 3)),
    (lambda c: c.brpoplpush("a", "b", 1), ("BRPOPLPUSH", "a", "b", 1)),
    (lambda c: c.blpoprpush("jobs", "doing"), ("BLPOPRPUSH", "jobs", "doing", 0)),
    (lambda c: c.publish("news", {"id": 1}), ("PUBLISH", "news", {"id": 1})),
    (lambda c: c.pubsub_channels(), ("PUBSUB", "CHANNELS")),
    (lambda c: c.pubsub_channels("n*"), ("PUBSUB", "CHANNELS", "n*")),
    (lambda c: c.pubsub_numsub(), ("PUBSUB", "NUMSUB")),
    (lambda c: c.pubsub_numsub("a", "b"), ("PUBSUB", "NUMSUB", "a", "b")),
    (lambda c: c.pubsub_numpat(), ("PUBSUB", "NUMPAT")),
]


@pytest.mark.parametrize(("call", "sent"), SYNTAX_CASES)
def test_methods_send_the_tables_syntax(call: Any, sent: tuple[object, ...]) -> None:
    recorder = Recorder()
    call(recorder)
    assert recorder.sent == [sent]
    assert table_error(sent) is None


# Arguments for calling every method with its required parameters only, by name.
SAMPLES: dict[str, object] = {
    "key": "k", "newkey": "k2", "source": "src", "destination": "dst", "value": "v",
    "element": 1, "pivot": 0, "field": "f", "message": "m", "name": "n", "pattern": "*",
    "substring": "s", "mapping": {"f": 1}, "seconds": 10, "milliseconds": 10_000,
    "when": 1_700_000_000, "offset": 0, "start": 0, "end": -1, "stop": -1, "index": 0,
    "count": 2, "increment": 1, "decrement": 1, "where": "AFTER", "keys": ["a", "b"],
    "timeout": 0.5, "channel": "news",
}
MANY_SAMPLES: dict[str, tuple[object, ...]] = {
    "keys": ("a", "b"), "elements": (1, "two"), "fields": ("f", b"g"), "ids": (3,),
    "sections": ("server",), "channels": ("news", b"sport"),
}


def minimal_call(method: Any) -> list[object]:
    args: list[object] = []
    for parameter in list(inspect.signature(method).parameters.values())[1:]:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            args += MANY_SAMPLES[parameter.name]
        elif parameter.default is inspect.Parameter.empty:
            args.append(SAMPLES[parameter.name])
    return args


@pytest.mark.parametrize("spec", WITH_METHODS, ids=lambda s: s.name)
def test_every_method_sends_an_argv_the_table_accepts(spec: CommandSpec) -> None:
    recorder = Recorder()
    method = command_methods()[method_name(spec.name)]
    method(recorder, *minimal_call(method))
    [argv] = recorder.sent
    assert resolve(argv) is spec
    assert table_error(argv) is None


def test_every_argv_the_recorder_saw_resolves_with_a_valid_arity() -> None:
    recorder = Recorder()
    for call, _ in SYNTAX_CASES:
        call(recorder)
    for method in command_methods().values():
        method(recorder, *minimal_call(method))
    list(recorder.scan_iter(match="*"))
    assert len(recorder.sent) == len(SYNTAX_CASES) + len(WITH_METHODS) + 1
    for argv in recorder.sent:
        spec = resolve(argv)
        assert spec is not None, argv
        assert spec.check_arity(len(argv) - spec.words), argv


def test_status_methods_return_true() -> None:
    recorder = Recorder()
    assert recorder.set("k", 1) is True and recorder.flushall() is True
    assert recorder.rename("a", "b") is True and recorder.ltrim("q", 0, -1) is True


def test_set_answers_false_when_nx_or_xx_stops_it_and_the_old_value_with_get() -> None:
    assert Recorder(None).set("k", 1, nx=True) is False
    assert Recorder([1, 2]).set("k", 1, get=True) == [1, 2]
    assert Recorder(None).set("k", 1, get=True) is None


def test_blocking_pops_answer_a_key_and_element_pair_or_none() -> None:
    recorder = Recorder(["q", {"job": 1}], None, [b"r", 2], "moved", None)
    assert recorder.blpop("q") == ("q", {"job": 1})
    assert recorder.blpop(["q", "r"], 0.1) is None
    assert recorder.brpop("r") == (b"r", 2)
    assert recorder.blpoprpush("q", "doing") == "moved"
    assert recorder.blmove("q", "doing", 1) is None


def test_replies_are_converted() -> None:
    recorder = Recorder(1.5, 3, [5, ["a", b"b"]], "int")
    assert recorder.incrbyfloat("k", 1) == 1.5 and recorder.incrbyfloat("k", 1) == 3.0
    assert recorder.scan(0) == (5, ["a", b"b"])
    assert recorder.object_encoding("k") == "int"


def test_scan_iter_follows_the_cursor_to_zero() -> None:
    recorder = Recorder([4, ["a", "b"]], [9, []], [0, [b"c"]])
    assert list(recorder.scan_iter(match="*", count=2, type="string")) == ["a", "b", b"c"]
    options = ("MATCH", "*", "COUNT", 2, "TYPE", "string")
    assert recorder.sent == [("SCAN", 0, *options), ("SCAN", 4, *options), ("SCAN", 9, *options)]


def test_scan_iter_is_lazy() -> None:
    recorder = Recorder([4, ["a"]], [0, ["b"]])
    keys = recorder.scan_iter()
    assert recorder.sent == []
    assert next(keys) == "a"
    assert recorder.sent == [("SCAN", 0)]


def test_table_error_catches_what_the_server_would_refuse() -> None:
    assert table_error(("SET", "k")) is not None
    assert table_error(("SET", "k", 1, "EX", 1, "PX", 1)) is not None
    assert table_error(("EXPIRE", "k", "10")) is not None
    assert table_error(("NOPE",)) is not None
    assert table_error(("LMOVE", "a", "b", "UP", "LEFT")) is not None
