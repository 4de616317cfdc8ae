import argparse

import pytest

from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import encode_reply
from kv_tools._bench import build_parser
from kv_tools._bench import main as bench_main
from kv_tools._wire import MSET_KEYS, TESTS, KvWire, ReferenceWire, RespWire, command, key_name


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_defaults_follow_redis_benchmark() -> None:
    args = parse("-a", "pw")
    assert (args.host, args.port, args.clients, args.pipeline, args.data_size) == (
        "127.0.0.1", 6378, 50, 1, 3)
    assert (args.keyspace, args.procs, args.repeat) == (10_000, 2, 1)


def test_the_default_runs_every_test() -> None:
    assert parse("-a", "pw").tests == "ping,set,get,incr,lpush,rpush,lpop,rpop,hset,hget,mset"
    assert parse("-a", "pw", "-t", "set,lpush").tests == "set,lpush"


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["-t", "set,nope"], "unknown tests"), (["-c", "0"], "clients must be at least 1"),
     (["-d", "-1"], "value size"), ([], "no password"), (["--rate", "0"], "--rate must be"),
     (["--json", "--csv"], "not allowed with")],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KV_PASS", raising=False)
    password = [] if message == "no password" else ["-a", "pw"]
    with pytest.raises(SystemExit) as exit_info:
        bench_main([*argv, *password])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_keys_are_16_characters_like_redis_benchmark() -> None:
    assert key_name(42) == "key:000000000042"


def test_wires_encode_the_same_command() -> None:
    parts = command(TESTS["set"], 7, b"xyz")
    assert parts == ["SET", "key:000000000007", b"xyz"]
    assert FrameDecoder().feed(KvWire("h", 1, "p").encode(parts)) == [parts]
    assert RespWire("h", 1).encode(parts) == b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000007\r\n$3\r\nxyz\r\n"


def test_mset_writes_ten_distinct_keys_per_request() -> None:
    parts = command(TESTS["mset"], 1, b"v", more=range(2, 2 + MSET_KEYS - 1))
    assert TESTS["mset"].keys == MSET_KEYS == 10
    assert parts == ["MSET", *[p for n in range(1, 11) for p in (key_name(n), b"v")]]
    assert FrameDecoder().feed(KvWire("h", 1, "p").encode(parts)) == [parts]
    resp = RespWire("h", 1).encode(parts)
    assert resp.startswith(b"*21\r\n$4\r\nMSET\r\n$16\r\nkey:000000000001\r\n$1\r\nv\r\n")
    assert resp.count(b"$16\r\nkey:") == 10
    assert KvWire("h", 1, "p").reply(TESTS["mset"], b"v") == encode_reply("OK")
    assert RespWire("h", 1).reply(TESTS["mset"], b"v") == b"+OK\r\n"
    assert not ReferenceWire("h", 1).supports(TESTS["mset"])


def test_ping_is_the_bare_command_on_both_wires() -> None:
    parts = command(TESTS["ping"], 3, b"v")
    assert parts == ["PING"] and TESTS["ping"].keys == 1
    assert KvWire("h", 1, "p").encode(parts) == encode_frame(["PING"])
    assert RespWire("h", 1).encode(parts) == b"*1\r\n$4\r\nPING\r\n"
    assert RespWire("h", 1).reply(TESTS["ping"], b"") == b"+PONG\r\n"


def test_one_key_commands_ignore_more_numbers() -> None:
    assert command(TESTS["get"], 5, b"v", more=[9]) == ["GET", key_name(5)]


def test_expected_replies() -> None:
    assert KvWire("h", 1, "p").reply(TESTS["get"], b"xyz") == encode_reply(b"xyz")
    assert KvWire("h", 1, "p").reply(TESTS["ping"], b"") == encode_reply("PONG")
    assert ReferenceWire("h", 1).reply(TESTS["set"], b"") == encode_frame("OK")
    assert RespWire("h", 1).reply(TESTS["get"], b"xyz") == b"$3\r\nxyz\r\n"
    with pytest.raises(ValueError, match="only knows SET and GET"):
        ReferenceWire("h", 1).reply(TESTS["ping"], b"")
    with pytest.raises(ValueError, match="only knows SET and GET"):
        ReferenceWire("h", 1).reply(TESTS["incr"], b"")


def test_the_password_stays_out_of_reprs() -> None:
    assert "s3cret" not in repr(KvWire("h", 1, "s3cret"))
