"""The ``kv`` command without a server: output rules, argument typing, password
lookup, completion and the command list (tests-integration/test_cli.py runs it
against a real server)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kv_client._cli import (
    build_parser,
    convert_argv,
    main,
    read_stdin_argument,
)
from kv_client._cli_format import (
    bytes_text,
    command_help,
    commands_text,
    error_text,
    info_lines,
    message_line,
    plain_lines,
    reply_lines,
)
from kv_client._cli_options import PASSWORD_FILE, UsageError, client_options, resolve_password
from kv_client._cli_repl import complete, history_path, run_repl
from kv_client._errors import ConnectionError
from kv_client._pubsub import Message
from kv_protocol.commands import COMMANDS, lookup
from kv_protocol.errors import ServerError, WrongTypeError
from kv_protocol.records import tagged


@pytest.mark.parametrize(("reply", "lines"), [
    ("text", ["text"]),
    ("two\nlines", ["two\nlines"]),
    (b"caf\xc3\xa9", ["café"]),
    (42, ["42"]),
    (1.0, ["1.0"]),
    (float("inf"), ["inf"]),
    (True, ["true"]),
    (False, ["false"]),
    (None, [""]),
    ([], []),
    (["a", 1, None, b"b"], ["a", "1", "", "b"]),
    ({"f": "v", 1: 2.5}, ["f\tv", "1\t2.5"]),
])
def test_plain_output(reply: object, lines: list[str]) -> None:
    assert plain_lines(reply) == lines


def test_items_stay_on_one_line_and_containers_nest_as_tagged_json() -> None:
    assert plain_lines(["a\nb", "tab\there", [1, b"\x00"], {"k": [True]}]) == [
        '"a\\nb"', '"tab\\there"', '[1,{"$bytes":"AA=="}]', '{"k":[true]}']
    assert plain_lines({"k\tk": "v\nv"}) == ['"k\\tk"\t"v\\nv"']


def test_invalid_utf8_bytes_are_escaped_unambiguously() -> None:
    assert bytes_text(b"ab\xff") == "ab\\xff"
    # A literal backslash doubles, so it cannot pass for an escape.
    assert bytes_text(b"\\xff\xff") == "\\\\xff\\xff"
    assert bytes_text(b"\\ valid") == "\\ valid"


def test_json_output_is_lossless_tagged_json() -> None:
    reply = [b"\xff", 2**70, float("nan"), {1: "one"}, {"plain": None}]
    [line] = reply_lines(reply, "LRANGE", as_json=True)
    assert line == ('[{"$bytes":"/w=="},{"$int":"400000000000000000"},{"$float":"nan"},'
                    '{"$map":[[1,"one"]]},{"plain":null}]')
    assert tagged.loads(line)[:2] == reply[:2]


def test_info_in_redis_layout() -> None:
    sections = {"server": {"kv_version": "0.1.0", "listeners": ["tcp a", "unix b"]},
                "commandstats": {"get": {"calls": 2, "failed_calls": 0}}}
    expected = ["# Server", "kv_version:0.1.0", "listeners:tcp a,unix b", "",
                "# Commandstats", "get:calls=2,failed_calls=0"]
    assert info_lines(sections) == expected
    assert reply_lines(sections, "INFO", as_json=False) == expected
    # Only INFO's reply takes this layout; another map is key<TAB>value.
    assert reply_lines({"a": 1}, "HGETALL", as_json=False) == ["a\t1"]


def test_error_text() -> None:
    assert error_text(WrongTypeError()) == ("(error) WRONGTYPE Operation against a key holding "
                                            "the wrong kind of value")
    assert error_text(ServerError("new", code="NEWCODE")) == "(error) NEWCODE new"
    assert error_text(ConnectionError("cannot connect")) == "kv: cannot connect"


def test_commands_list_is_the_table() -> None:
    text = commands_text()
    for spec in COMMANDS:
        assert f"  {spec.syntax}" in text
        assert spec.summary in text
    headers = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert headers == list(dict.fromkeys(spec.group.capitalize() for spec in COMMANDS))


def test_command_help_includes_notes() -> None:
    spec = lookup("client kill")
    assert spec is not None
    lines = command_help(spec)
    assert lines[0] == "CLIENT KILL ID id [id ...]"
    assert all(len(line) <= 78 for line in lines)
    assert "push" in " ".join(lines)


@pytest.mark.parametrize(("words", "typed", "argv"), [
    (["SET", "k", "42"], False, ["SET", "k", "42"]),
    (["set", "k", "42"], True, ["set", "k", 42]),
    (["SET", "k", '[1,"a"]'], True, ["SET", "k", [1, "a"]]),
    (["SET", "k", '{"$bytes":"AAE="}'], True, ["SET", "k", b"\x00\x01"]),
    (["SET", "k", "v", "ex", "10", "NX"], False, ["SET", "k", "v", "ex", 10, "NX"]),
    (["INCRBY", "n", "-5"], False, ["INCRBY", "n", -5]),
    (["INCRBY", "n", "5x"], False, ["INCRBY", "n", "5x"]),
    (["INCRBY", "n", "1_0"], False, ["INCRBY", "n", "1_0"]),
    (["INCRBYFLOAT", "n", "2"], False, ["INCRBYFLOAT", "n", 2]),
    (["INCRBYFLOAT", "n", "-.5e1"], False, ["INCRBYFLOAT", "n", -5.0]),
    (["LRANGE", "l", "0", "-1"], False, ["LRANGE", "l", 0, -1]),
    (["HSET", "h", "1", "1", "2", "2"], True, ["HSET", "h", "1", 1, "2", 2]),
    (["MSET", "a", "1", "b", "true"], True, ["MSET", "a", 1, "b", True]),
    (["CLIENT", "KILL", "ID", "7", "8"], False, ["CLIENT", "KILL", "ID", 7, 8]),
    (["LPOS", "l", "x", "RANK", "2"], False, ["LPOS", "l", "x", "RANK", 2]),
    # Surplus and unknown arguments stay text: the server reports them.
    (["GET", "k", "1"], False, ["GET", "k", "1"]),
    (["NOSUCH", "1", "[]"], True, ["NOSUCH", "1", "[]"]),
    (["SET", "k", "v", "BOGUS", "1"], False, ["SET", "k", "v", "BOGUS", "1"]),
])
def test_arguments_are_typed_from_the_table(words: list[str], typed: bool, argv: list[object]) -> None:
    assert convert_argv(words, typed) == argv


def test_typed_value_that_is_not_json_names_the_argument() -> None:
    with pytest.raises(UsageError, match=r'argument 2 \(value\) of SET: invalid JSON.*"text"'):
        convert_argv(["SET", "k", "hello"], typed=True)


def test_stdin_argument_is_kept_exactly() -> None:
    assert read_stdin_argument(io.BytesIO(b"line\n\n")) == "line\n\n"
    assert read_stdin_argument(io.BytesIO(b"\xff\x00")) == b"\xff\x00"


def parse(*words: str) -> object:
    return build_parser().parse_args(list(words))


def test_password_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / PASSWORD_FILE).write_text("from-file\n")
    monkeypatch.setenv("KV_PASS", "from-env")
    assert resolve_password(parse("--pass", "given", "--dir", str(tmp_path))) == "given"
    assert resolve_password(parse("--dir", str(tmp_path))) == "from-env"
    monkeypatch.delenv("KV_PASS")
    assert resolve_password(parse("--dir", str(tmp_path))) == "from-file"
    with pytest.raises(UsageError, match="no password: give --pass, set KV_PASS"):
        resolve_password(parse("--dir", str(tmp_path / "missing")))


def test_client_options_leave_defaults_to_the_client() -> None:
    assert client_options(parse("--pass", "p")) == {"password": "p"}
    assert client_options(parse("--pass", "p", "--port", "7", "--unix", "/s", "--timeout", "1.5",
                                 "--name", "n")) == {
        "password": "p", "timeout": 1.5, "port": 7, "unix_path": Path("/s"), "name": "n"}


@pytest.mark.parametrize("words", [
    ["--poll", "-1", "PING"], ["--poll", "x", "PING"], ["--count", "0", "PING"],
    ["--poll", "1"], ["--pass", "p", "--"], ["--nosuchflag"],
])
def test_usage_errors_exit_2(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(words)
    assert exited.value.code == 2
    assert "usage: kv" in capsys.readouterr().err


def test_missing_password_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("KV_PASS", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["--dir", str(tmp_path), "PING"])
    assert exited.value.code == 2
    assert "no password" in capsys.readouterr().err


def test_commands_flag_needs_no_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--commands"]) == 0
    assert capsys.readouterr().out == commands_text() + "\n"


def test_options_after_the_command_are_its_arguments() -> None:
    args = parse("--typed", "SET", "k", "--json")
    assert (args.command, args.args, args.json) == ("SET", ["k", "--json"], False)


@pytest.mark.parametrize(("line", "found"), [
    ("", None),
    ("g", ["get", "getdel", "getex", "getrange", "getset"]),
    ("HGETA", ["HGETALL"]),
    ("CLIENT K", ["KILL"]),
    ("client ", ["id", "getname", "setname", "list", "kill"]),
    ("obj", ["object"]),
    ("GET k", []),
    ("CLIENT KILL I", []),
    ("qu", ["quit"]),
])
def test_completion(line: str, found: list[str] | None) -> None:
    matches = complete(line)
    if found is None:
        names = {spec.name.split()[0] for spec in COMMANDS}
        assert names <= set(matches) and {"HELP", "QUIT", "EXIT"} <= set(matches)
    else:
        assert sorted(matches) == sorted(found)


def test_history_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KV_HISTFILE", str(tmp_path / "h"))
    assert history_path() == tmp_path / "h"
    monkeypatch.delenv("KV_HISTFILE")
    assert history_path() == Path.home() / ".kv_history"


def test_repl_from_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[list[str]] = []

    def run(words: list[str]) -> bool:
        ran.append(words)
        return words[0] != "FAIL"

    script = 'SET k "two words"\n\n  \nhelp ping\nFAIL\nECHO "open\nQUIT\nGET k\n'
    assert run_repl(run, "prompt> ", io.StringIO(script)) == 1
    assert ran == [["SET", "k", "two words"], ["FAIL"]]
    out, err = capsys.readouterr()
    assert "prompt>" not in out and out.startswith("PING [message]")
    assert err == "(error) No closing quotation\n"
    assert run_repl(run, "prompt> ", io.StringIO("GET k\n")) == 0


def test_exec_prints_one_line_per_queued_command_with_errors_in_place() -> None:
    answer = [[0, "OK"], [1, "WRONGTYPE", "not a list"], [0, [1, "a\tb"]], [0, None]]
    assert reply_lines(answer, "EXEC", as_json=False) == [
        "OK", "(error) WRONGTYPE not a list", '[1,"a\\tb"]', ""]
    assert reply_lines(answer, "EXEC", as_json=True) == [tagged.dumps(answer)]
    assert reply_lines(None, "EXEC", as_json=False) == [""]  # a watched key changed


@pytest.mark.parametrize(("message", "plain", "json"), [
    (Message("message", "news", {"id": 1}), 'news\t{"id":1}',
     '{"kind":"message","channel":"news","data":{"id":1}}'),
    (Message("pmessage", b"n\xff", "two\nlines", pattern="n*"), 'n\\xff\t"two\\nlines"',
     '{"kind":"pmessage","channel":{"$bytes":"bv8="},"data":"two\\nlines","pattern":"n*"}'),
])
def test_a_message_prints_on_one_line(message: Message, plain: str, json: str) -> None:
    assert message_line(message, as_json=False) == plain
    assert message_line(message, as_json=True) == json
    assert tagged.loads(json)["data"] == message.data


def test_poll_does_not_apply_to_subscribe(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--pass", "p", "--poll", "1", "SUBSCRIBE", "news"])
    assert exited.value.code == 2
    assert "--poll does not apply to SUBSCRIBE" in capsys.readouterr().err
