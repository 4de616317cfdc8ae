from pathlib import Path

import pytest

from kv_protocol.commands import (
    BY_NAME,
    COMMANDS,
    CONTAINERS,
    Arg,
    ArgKind,
    CommandSpec,
    Flag,
    Option,
    accepts,
    arity_message,
    key,
    lookup,
    options,
    predicate,
    render_markdown,
    resolve,
    value,
)
from kv_protocol.errors import ArgumentTypeError, CommandSyntaxError, NotIntegerError

DOCS = Path(__file__).parents[3] / "docs" / "commands.md"


def test_names_are_unique_and_upper_case() -> None:
    names = [spec.name for spec in COMMANDS]
    assert len(names) == len(set(names)) == len(BY_NAME)
    assert all(name == name.upper() for name in names)


def test_every_command_is_documented() -> None:
    for spec in COMMANDS:
        assert spec.summary.endswith(".") and spec.group, spec.name
        assert not (Flag.WRITE in spec.flags and Flag.READONLY in spec.flags), spec.name


def test_containers_are_derived_from_subcommand_names() -> None:
    assert {"CLIENT", "OBJECT", "PUBSUB"} == CONTAINERS
    assert lookup("CLIENT") is None


@pytest.mark.parametrize(
    ("name", "syntax", "low", "high"),
    [
        ("PING", "PING [message]", 0, 1),
        ("GET", "GET key", 1, 1),
        ("DEL", "DEL key [key ...]", 1, None),
        ("MSET", "MSET key value [key value ...]", 2, None),
        ("INFO", "INFO [section [section ...]]", 0, None),
        ("CLIENT KILL", "CLIENT KILL ID id [id ...]", 2, None),
        ("CLIENT LIST", "CLIENT LIST", 0, 0),
    ],
)
def test_syntax_and_arity_are_derived(name: str, syntax: str, low: int, high: int | None) -> None:
    spec = BY_NAME[name]
    assert (spec.syntax, spec.min_args, spec.max_args) == (syntax, low, high)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("GET", [1], [0, 2]),
        ("MSET", [2, 4, 6], [0, 1, 3, 5]),
        ("DEL", [1, 2, 3], [0]),
        ("INFO", [0, 1, 5], []),
        ("PING", [0, 1], [2]),
        ("CLIENT KILL", [2, 3], [0, 1]),
    ],
)
def test_check_arity(name: str, good: list[int], bad: list[int]) -> None:
    spec = BY_NAME[name]
    assert all(spec.check_arity(n) for n in good)
    assert not any(spec.check_arity(n) for n in bad)


@pytest.mark.parametrize(
    ("name", "argc", "indices", "key_spec"),
    [
        ("GET", 1, [0], (1, 1, 1)),
        ("MSET", 6, [0, 2, 4], (1, -1, 2)),
        ("DEL", 3, [0, 1, 2], (1, -1, 1)),
        ("PING", 1, [], (0, 0, 0)),
        ("BLPOP", 3, [0, 1], (1, -2, 1)),
        ("BLMOVE", 5, [0, 1], (1, 2, 1)),
    ],
)
def test_key_positions(name: str, argc: int, indices: list[int], key_spec: tuple[int, int, int]) -> None:
    spec = BY_NAME[name]
    assert spec.key_indices(argc) == indices
    assert spec.key_spec == key_spec


def test_a_trailing_argument_is_placed_from_the_end() -> None:
    spec = BY_NAME["BLPOP"]
    assert (spec.syntax, spec.min_args, spec.max_args) == ("BLPOP key [key ...] timeout", 2, None)
    assert [spec.arg_at(i, 4).kind for i in range(4)] == [ArgKind.KEY] * 3 + [ArgKind.NUMBER]
    assert [spec.check_arity(n) for n in range(5)] == [False, False, True, True, True]


def test_argument_kinds_cycle_through_the_tail() -> None:
    spec = BY_NAME["MSET"]
    assert [spec.arg_at(i, 4).kind for i in range(4)] == [ArgKind.KEY, ArgKind.VALUE] * 2
    kill = BY_NAME["CLIENT KILL"]
    assert [kill.arg_at(i, 4).kind for i in range(4)] == [ArgKind.TOKEN] + [ArgKind.INTEGER] * 3


def test_resolve_follows_containers_case_insensitively() -> None:
    assert resolve(["get", "k"]) is BY_NAME["GET"]
    assert resolve(["client", "Kill", "ID", 3]) is BY_NAME["CLIENT KILL"]
    assert lookup("client   kill") is BY_NAME["CLIENT KILL"]
    assert resolve(["CLIENT"]) is None
    assert resolve(["CLIENT", 5]) is None
    assert resolve(["NOSUCH"]) is None
    assert resolve([b"GET", "k"]) is None
    assert resolve([]) is None


def test_arity_message_reads_like_redis() -> None:
    assert arity_message("GET") == "wrong number of arguments for 'get' command"


@pytest.mark.parametrize(
    "args",
    [
        (key(multiple=True), value(optional=True)),
        (key(multiple=True), key(multiple=True)),
        (value(optional=True), key()),
        (value(optional=True), Arg("rest", multiple=True)),
    ],
)
def test_invalid_declarations_are_refused(args: tuple[Arg, ...]) -> None:
    with pytest.raises(ValueError):
        CommandSpec("BAD", "test", "Bad.", args)


def test_names_must_be_upper_case() -> None:
    with pytest.raises(ValueError):
        CommandSpec("get", "test", "Lower.")


def test_docs_commands_md_is_current() -> None:
    assert DOCS.read_text() == render_markdown(), "docs/commands.md is stale: run `nox -s docs`"


def test_docs_mention_every_command() -> None:
    text = render_markdown()
    assert all(f"### {spec.name}\n" in text for spec in COMMANDS)


@pytest.mark.parametrize(
    ("name", "syntax", "low", "high"),
    [
        ("SET", ("SET key value [EX seconds | PX milliseconds | EXAT unix-time-seconds | "
                "PXAT unix-time-milliseconds | KEEPTTL] [NX | XX] [GET]"), 2, 14),
        ("LINSERT", "LINSERT key BEFORE|AFTER pivot element", 4, 4),
        ("EXPIRE", "EXPIRE key seconds [NX|XX|GT|LT]", 2, 3),
        ("SCAN", "SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]", 1, 7),
        ("HSET", "HSET key field value [field value ...]", 3, None),
        ("OBJECT ENCODING", "OBJECT ENCODING key", 1, 1),
    ],
)
def test_options_and_choices_derive_syntax_and_arity(name: str, syntax: str, low: int,
                                                     high: int | None) -> None:
    spec = BY_NAME[name]
    assert (spec.syntax, spec.min_args, spec.max_args) == (syntax, low, high)


def test_parse_options_reads_words_case_insensitively() -> None:
    spec = BY_NAME["SET"]
    assert spec.parse_options(["SET", "k", "v"]) == {}
    assert spec.parse_options(["set", "k", "v", "ex", 10, "Nx", "GET"]) == {
        "EX": 10, "NX": True, "GET": True}


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        (["EX"], CommandSyntaxError),
        (["EX", "10"], NotIntegerError),
        (["NX", "XX"], CommandSyntaxError),
        (["PX", 1, "EXAT", 2], CommandSyntaxError),
        (["GET", "GET"], CommandSyntaxError),
        (["SOON"], CommandSyntaxError),
        ([5], CommandSyntaxError),
    ],
)
def test_parse_options_refuses(tail: list[object], error: type[Exception]) -> None:
    with pytest.raises(error):
        BY_NAME["SET"].parse_options(["SET", "k", "v", *tail])


def test_option_argument_kinds_are_checked() -> None:
    scan = BY_NAME["SCAN"]
    assert scan.parse_options(["SCAN", 0, "MATCH", b"a*", "TYPE", "list"]) == {
        "MATCH": b"a*", "TYPE": "list"}
    with pytest.raises(ArgumentTypeError):
        scan.parse_options(["SCAN", 0, "MATCH", 5])


def test_past_the_positionals_an_options_command_describes_its_options() -> None:
    spec = BY_NAME["SET"]
    assert spec.arg_at(1, 6).kind is ArgKind.VALUE
    assert spec.arg_at(2, 6).kind is ArgKind.OPTIONS and spec.arg_at(5, 6).kind is ArgKind.OPTIONS
    assert spec.key_indices(4) == [0]


def test_kind_checks() -> None:
    assert accepts(ArgKind.NUMBER, 1) and accepts(ArgKind.NUMBER, 1.5)
    assert not accepts(ArgKind.NUMBER, True) and not accepts(ArgKind.NUMBER, "1")
    where = BY_NAME["LINSERT"].positional[1]
    assert predicate(where)("before") and not predicate(where)("MIDDLE")
    assert not predicate(where)(1)


@pytest.mark.parametrize(
    "args",
    [
        (options(Option("NX")), key()),
        (value(optional=True), options(Option("NX"))),
        (Arg("options", ArgKind.OPTIONS, optional=True),),
        (Arg("where", ArgKind.CHOICE),),
        (options(Option("KEY", key())),),
    ],
)
def test_invalid_option_declarations_are_refused(args: tuple[Arg, ...]) -> None:
    with pytest.raises(ValueError):
        CommandSpec("BAD", "test", "Bad.", args)
