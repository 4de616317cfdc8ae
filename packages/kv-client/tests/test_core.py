import pytest

from kv_client._config import ClientConfig
from kv_client._core import ClientCore, encode_request
from kv_client._errors import ConnectionError
from kv_protocol.connection import ServerConnection
from kv_protocol.errors import LocalProtocolError, WrongPassError, WrongTypeError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import Push, encode_error, encode_push, encode_reply
from protocol_helpers import PASSWORD, TEST_CREDENTIALS


def ready_core() -> ClientCore:
    core = ClientCore(ClientConfig(PASSWORD, name="unit"))
    server = ServerConnection(TEST_CREDENTIALS, connection_id=3, server_name="kv-server test")
    server.receive_data(core.data_to_send())
    assert core.receive_handshake(server.data_to_send()) is False
    server.receive_data(core.data_to_send())
    assert core.receive_handshake(server.data_to_send()) is True
    assert core.session is not None and core.session.connection_id == 3
    return core


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
