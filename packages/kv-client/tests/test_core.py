import pytest

from client_helpers import ready_core
from kv_client._config import ClientConfig
from kv_client._core import ClientCore, encode_request, may_retry, request_timeout
from kv_client._errors import ConnectionError
from kv_protocol.errors import LocalProtocolError, WrongPassError, WrongTypeError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import Push, encode_error, encode_push, encode_reply
from protocol_helpers import PASSWORD


def test_password_from_argument_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_PASS", "from env")
    assert ClientConfig.create(None).password == "from env"
    assert ClientConfig.create("given").password == "given"
    monkeypatch.delenv("KV_PASS")
    with pytest.raises(ValueError, match="set KV_PASS"):
        ClientConfig.create(None)


def test_config_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(ClientConfig("hunter2"))


def test_address() -> None:
    assert ClientConfig("p", host="h", port=1).address == "h:1"
    assert ClientConfig("p", unix_path=__import__("pathlib").Path("/s")).address == "unix:/s"


def test_handshake_then_replies_errors_and_pushes_stay_apart() -> None:
    core = ready_core()
    frames = (encode_reply(1) + encode_push("message", "news", "hi") + encode_error(WrongTypeError())
              + encode_reply(None))
    replies = core.receive_replies(frames)
    assert replies[0] == 1 and isinstance(replies[1], WrongTypeError) and replies[2] is None
    assert list(core.pushes) == [Push("message", ("news", "hi"))]


def test_server_refusal_during_handshake_raises_its_error() -> None:
    core = ClientCore(ClientConfig("wrong"))
    with pytest.raises(WrongPassError):
        core.receive_handshake(encode_error(WrongPassError()))


def test_eof_during_handshake() -> None:
    with pytest.raises(ConnectionError, match="closed the connection during the handshake"):
        ClientCore(ClientConfig(PASSWORD)).receive_handshake(b"")


def test_close_after_a_kill_notice_says_why() -> None:
    core = ready_core()
    assert core.receive_replies(encode_push("kill", "killed by client 9")) == []
    with pytest.raises(ConnectionError, match="closed the connection: killed by client 9"):
        core.receive_replies(b"")


def test_encode_request_refuses_what_kv_cannot_store() -> None:
    config = ClientConfig(PASSWORD)
    assert FrameDecoder().feed(encode_request(config, [("SET", "k", (1, 2)), ("GET", "k")])) == [
        ["SET", "k", [1, 2]], ["GET", "k"]]
    with pytest.raises(LocalProtocolError, match="argument 2 of 'SET' is a set"):
        encode_request(config, [("SET", "k", {1, 2})])
    with pytest.raises(LocalProtocolError, match="is a list"):
        encode_request(config, [("SET", "k", [object()])])
    with pytest.raises(LocalProtocolError, match="starts with its name"):
        encode_request(config, [(b"SET", "k")])
    with pytest.raises(LocalProtocolError, match="starts with its name"):
        encode_request(config, [()])


@pytest.mark.parametrize(("options", "message"), [
    ({"timeout_s": 0}, "timeout must be a number of seconds > 0"),
    ({"pool_timeout_s": -1.0}, "pool_timeout must be"),
    ({"connect_timeout_s": float("nan")}, "connect_timeout must be"),
    ({"max_connections": 0}, "max_connections must be a whole number >= 1"),
    ({"health_check_s": -1.0}, "health_check_interval must be >= 0"),
])
def test_bad_options_are_refused_when_the_client_is_made(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientConfig(PASSWORD, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("timeout_s", "commands", "expected"), [
    (None, [("BLPOP", "q", 5)], None),                  # no client timeout: none at all
    (2.0, [("GET", "k")], 2.0),
    (2.0, [("BLPOP", "q", "r", 5)], 7.0),               # the wait, plus the reply's time
    (2.0, [("blmove", "a", "b", "LEFT", "RIGHT", 0.5)], 2.5),
    (2.0, [("BRPOP", "q", 1), ("BLPOPRPUSH", "a", "b", 1.5)], 4.5),  # one after the other
    (2.0, [("BRPOPLPUSH", "a", "b", 0)], None),         # 0 blocks for ever
    (2.0, [("BLPOP", "q", float("inf"))], 2.0),         # refused at once by the server
    (2.0, [("BLPOP", "q", float("nan"))], 2.0),
    (2.0, [("BLPOP", "q", -1)], 2.0),                   # refused at once by the server
    (2.0, [("BLPOP", "q", "soon")], 2.0),
    (2.0, [("BLPOP", "q", True)], 2.0),
    (2.0, [(b"BLPOP", "q", 5)], 2.0),                   # not a command name
    (2.0, [()], 2.0),                                   # refused when encoded
])
def test_a_blocking_command_extends_the_requests_timeout(
        timeout_s: float | None, commands: list[tuple[object, ...]], expected: float | None) -> None:
    assert request_timeout(ClientConfig(PASSWORD, timeout_s=timeout_s), commands) == expected


def test_blocking_commands_are_never_sent_again_even_with_retry_writes() -> None:
    reads, writes = ClientConfig(PASSWORD), ClientConfig(PASSWORD, retry_writes=True)
    assert may_retry(reads, [("GET", "k"), ("LRANGE", "q", 0, -1)])
    assert not may_retry(reads, [("GET", "k"), ("LPUSH", "q", 1)])
    assert may_retry(writes, [("LPUSH", "q", 1), ("NOT-A-COMMAND",)])
    for blocking in [("BLPOP", "q", 1), ("BLMOVE", "a", "b", "LEFT", "LEFT", 1), ("BLPOPRPUSH", "a", "b", 0)]:
        assert not may_retry(writes, [("GET", "k"), blocking])
