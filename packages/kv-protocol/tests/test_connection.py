import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_protocol.connection import ClientConnection, ServerConnection, Session, State
from kv_protocol.errors import (
    LocalProtocolError,
    NoAuthError,
    ProtoError,
    RemoteProtocolError,
    ServerError,
    WrongPassError,
)
from kv_protocol.framing import FrameDecoder, encode_frame
from kv_protocol.handshake import Challenge, Proof, Welcome, derive_key, proofs_match
from kv_protocol.messages import encode_error, encode_reply
from protocol_helpers import PASSWORD, TEST_CREDENTIALS, ConnectionPair, values


def test_handshake_reaches_ready_on_both_sides() -> None:
    pair = ConnectionPair()
    pair.handshake()
    assert pair.client.state is pair.server.state is State.READY
    assert pair.client.session == Session(7, "kv-server test")
    assert pair.server.hello is not None and pair.server.hello.name == "test"


def test_commands_flow_after_the_handshake() -> None:
    pair = ConnectionPair()
    pair.handshake()
    assert pair.server.receive_data(pair.client.send_command(["SET", "k", 1])) == [["SET", "k", 1]]
    assert pair.client.receive_data(encode_reply("OK")) == [[0, "OK"]]


def test_commands_pipelined_behind_the_proof_are_kept() -> None:
    pair = ConnectionPair()
    pair.to_server()
    pair.to_client()
    proof = pair.client.data_to_send()
    trailing = encode_frame(["PING"]) + encode_frame(["GET", "k"])
    assert pair.server.receive_data(proof + trailing) == [["PING"], ["GET", "k"]]
    assert pair.server.state is State.READY


def test_wrong_password_is_refused_and_reported_to_the_client() -> None:
    pair = ConnectionPair(password="not the password")
    pair.to_server()
    pair.to_client()
    with pytest.raises(WrongPassError):
        pair.to_server()
    assert pair.server.state is State.ERROR
    with pytest.raises(WrongPassError):
        pair.client.receive_data(encode_error(WrongPassError()))
    assert pair.client.state is State.ERROR


def test_a_command_before_the_handshake_is_refused() -> None:
    server = ServerConnection(TEST_CREDENTIALS, connection_id=1, server_name="s")
    with pytest.raises(NoAuthError):
        server.receive_data(encode_frame(["GET", "k"]))


def test_garbage_before_the_handshake_is_a_protocol_error() -> None:
    server = ServerConnection(TEST_CREDENTIALS, connection_id=1, server_name="s")
    with pytest.raises(RemoteProtocolError):
        server.receive_data(b"\x00\x00\x00\x02\xff\xff")
    assert server.state is State.ERROR


def test_handshake_frames_are_small() -> None:
    server = ServerConnection(TEST_CREDENTIALS, connection_id=1, server_name="s")
    with pytest.raises(RemoteProtocolError, match="exceeds the limit of 4096"):
        server.receive_data(b"\x00\x01\x00\x00")


def test_ready_lifts_the_handshake_frame_limit() -> None:
    pair = ConnectionPair()
    pair.handshake()
    big = ["SET", "k", b"x" * 100_000]
    assert pair.server.receive_data(pair.client.send_command(big)) == [big]


def test_client_detects_a_server_that_does_not_know_the_password() -> None:
    client = ClientConnection(PASSWORD)
    fake = Challenge("impostor", b"s" * 16, b"salt", 1000)
    client.receive_data(encode_frame(fake.to_wire()))
    with pytest.raises(RemoteProtocolError, match="proof does not verify"):
        client.receive_data(encode_frame(Welcome(1, b"\x00" * 32).to_wire()))
    assert client.state is State.ERROR


def test_client_reports_server_error_during_handshake() -> None:
    client = ClientConnection(PASSWORD)
    with pytest.raises(ProtoError, match="bad uuid"):
        client.receive_data(encode_error(ProtoError("bad uuid")))


def test_client_refuses_a_reply_where_a_handshake_message_belongs() -> None:
    client = ClientConnection(PASSWORD)
    with pytest.raises(RemoteProtocolError, match="expected a handshake message"):
        client.receive_data(encode_reply("OK"))


def test_state_rules() -> None:
    client = ClientConnection(PASSWORD)
    with pytest.raises(LocalProtocolError, match="cannot send a command in state HANDSHAKE"):
        client.send_command(["PING"])
    assert client.receive_data(b"") == []
    assert client.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="cannot receive data in state CLOSED"):
        client.receive_data(b"x")


def test_eof_after_ready_closes() -> None:
    pair = ConnectionPair()
    pair.handshake()
    assert pair.server.receive_data(b"") == []
    assert pair.server.state is State.CLOSED
    pair.server.close()
    assert pair.server.state is State.CLOSED


def test_client_hello_identifies_the_client() -> None:
    client = ClientConnection(PASSWORD, name="worker", client_id="ABCD1234", hostname="h")
    [hello] = FrameDecoder().feed(client.data_to_send())
    assert isinstance(hello, dict)
    assert (hello["id"], hello["name"], hello["hostname"]) == ("ABCD1234", "worker", "h")
    assert len(hello["nonce"]) == 16
    assert client.data_to_send() == b""


@given(st.lists(values | st.dictionaries(st.text(max_size=8), values, max_size=6), min_size=1, max_size=3))
def test_server_handshake_refuses_arbitrary_messages_cleanly(messages: list[object]) -> None:
    server = ServerConnection(TEST_CREDENTIALS, connection_id=1, server_name="s")
    try:
        server.receive_data(b"".join(encode_frame(m) for m in messages))
    except (RemoteProtocolError, ServerError):
        assert server.state is State.ERROR
    else:
        assert server.state is State.HANDSHAKE


@given(st.binary(max_size=300))
def test_server_handshake_survives_arbitrary_bytes(data: bytes) -> None:
    server = ServerConnection(TEST_CREDENTIALS, connection_id=1, server_name="s")
    with contextlib.suppress(RemoteProtocolError, ServerError):
        server.receive_data(data)


READONLY_PASSWORD = "read but do not touch"
READONLY_KEY = derive_key(READONLY_PASSWORD, TEST_CREDENTIALS.salt, TEST_CREDENTIALS.iterations)


def readonly_pair(password: str) -> ConnectionPair:
    """A pair whose server also accepts the read-only password."""
    pair = ConnectionPair(password)
    pair.server = ServerConnection(TEST_CREDENTIALS, connection_id=7, server_name="kv-server test",
                                   readonly_key=READONLY_KEY)
    return pair


@pytest.mark.parametrize(("password", "readonly"), [(PASSWORD, False), (READONLY_PASSWORD, True)])
def test_either_password_completes_the_handshake_and_the_client_verifies_the_server(
    password: str, readonly: bool
) -> None:
    pair = readonly_pair(password)
    pair.handshake()  # the client checked the welcome's proof, made with the key that matched
    assert pair.client.session == Session(7, "kv-server test")
    assert pair.server.readonly is readonly


def test_the_readonly_password_is_refused_when_the_server_has_none() -> None:
    pair = ConnectionPair(READONLY_PASSWORD)
    pair.to_server()
    pair.to_client()
    with pytest.raises(WrongPassError):
        pair.to_server()
    assert not pair.server.readonly


@pytest.mark.parametrize("password", [PASSWORD, READONLY_PASSWORD, "wrong"])
def test_both_proofs_are_compared_whichever_matches(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No early exit: the work done does not depend on which key a proof matches."""
    compared: list[bytes] = []

    def counting(expected: bytes, received: bytes) -> bool:
        compared.append(expected)
        return proofs_match(expected, received)

    monkeypatch.setattr("kv_protocol.connection.proofs_match", counting)
    pair = readonly_pair(password)
    pair.to_server()
    pair.to_client()
    with contextlib.suppress(WrongPassError):
        pair.to_server()
    assert len(compared) == 2


@given(st.binary(min_size=32, max_size=32))
def test_a_proof_matching_neither_key_is_refused(proof: bytes) -> None:
    server = ServerConnection(TEST_CREDENTIALS, connection_id=1, server_name="s",
                              readonly_key=READONLY_KEY)
    server.receive_data(ClientConnection(PASSWORD).data_to_send())
    with pytest.raises(WrongPassError):
        server.receive_data(encode_frame(Proof(proof).to_wire()))
    assert server.state is State.ERROR and not server.readonly
