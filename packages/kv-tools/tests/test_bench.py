import argparse
import json

import pytest

from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.messages import encode_reply
from kv_tools._bench import Measurement, build_parser, report, report_json, summarize
from kv_tools._bench import main as bench_main
from kv_tools._wire import TESTS, KvWire, ReferenceWire, RespWire, command, key_name


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_defaults_follow_redis_benchmark() -> None:
    args = parse("-a", "pw")
    assert (args.host, args.port, args.clients, args.pipeline, args.data_size) == (
        "127.0.0.1", 6378, 50, 1, 3)
    assert (args.keyspace, args.procs, args.repeat) == (10_000, 2, 1)


def test_the_default_runs_every_test() -> None:
    assert parse("-a", "pw").tests == "ping,set,get,incr,lpush,rpush,lpop,rpop,hset,hget"
    assert parse("-a", "pw", "-t", "set,lpush").tests == "set,lpush"


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["-t", "set,nope"], "unknown tests"), (["-c", "0"], "clients must be at least 1"),
     (["-d", "-1"], "value size"), ([], "no password")],
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


def test_expected_replies() -> None:
    assert KvWire("h", 1, "p").reply(TESTS["get"], b"xyz") == encode_reply(b"xyz")
    assert KvWire("h", 1, "p").reply(TESTS["ping"], b"") == encode_reply("PONG")
    assert ReferenceWire("h", 1).reply(TESTS["set"], b"") == encode_frame("OK")
    assert RespWire("h", 1).reply(TESTS["get"], b"xyz") == b"$3\r\nxyz\r\n"
    with pytest.raises(ValueError, match="only knows SET and GET"):
        ReferenceWire("h", 1).reply(TESTS["ping"], b"")
    with pytest.raises(ValueError, match="only knows SET and GET"):
        ReferenceWire("h", 1).reply(TESTS["incr"], b"")


def test_summary_takes_medians_and_keeps_missing_cpu_missing() -> None:
    runs = [Measurement(100, 5, 9, None), Measurement(300, 1, 7, None), Measurement(200, 3, 8, None)]
    assert summarize(runs) == Measurement(200, 3, 8, None)


def test_report_shows_ratios_on_kv_rows() -> None:
    args = parse("-a", "pw", "-t", "set")
    table = report(args, {("set", "kv"): [Measurement(60_000, 500, 900, 12.0)],
                          ("set", "redis"): [Measurement(100_000, 300, 600, 6.0)],
                          ("set", "reference"): [Measurement(75_000, 400, 800, None)]})
    kv_row = next(line for line in table.splitlines() if line.startswith("set    kv "))
    assert "60,000" in kv_row and "0.60x" in kv_row and "0.80x" in kv_row and "12.00" in kv_row
    assert "reference" in table and "-" in table.splitlines()[-1]


def test_report_shows_dashes_for_a_test_a_server_lacks() -> None:
    args = parse("-a", "pw", "-t", "set,lpush")
    table = report(args, {("set", "kv"): [Measurement(60_000, 500, 900, 12.0)],
                          ("set", "reference"): [Measurement(75_000, 400, 800, 11.0)],
                          ("lpush", "kv"): [Measurement(50_000, 500, 900, 14.0)]})
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in table.splitlines()[3:]}
    assert rows[("lpush", "reference")] == ["-", "-", "-", "-"]
    assert rows[("lpush", "kv")] == ["50,000", "500", "900", "14.00", "-"]
    assert rows[("set", "kv")][-1] == "0.80x"


def test_the_password_stays_out_of_reprs() -> None:
    assert "s3cret" not in repr(KvWire("h", 1, "s3cret"))


def test_json_report_has_the_same_medians() -> None:
    args = parse("-a", "pw", "-t", "set", "--json", "-P", "16", "--repeat", "2")
    data = json.loads(report_json(args, {
        ("set", "kv"): [Measurement(60_000, 500, 900, 12.0), Measurement(80_000, 300, 700, None)],
        ("set", "redis"): [Measurement(100_000, 300, 600, None)]}))
    assert data["settings"]["pipeline"] == 16 and data["settings"]["repeat"] == 2
    assert data["results"] == [
        {"test": "set", "server": "kv", "runs": 2, "requests_per_s": 70_000, "p50_us": 400,
         "p99_us": 800, "cpu_us_per_request": 12.0},
        {"test": "set", "server": "redis", "runs": 1, "requests_per_s": 100_000, "p50_us": 300,
         "p99_us": 600, "cpu_us_per_request": None},
    ]
