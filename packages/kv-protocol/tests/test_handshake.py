import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kv_protocol.errors import RemoteProtocolError
from kv_protocol.handshake import (
    DEFAULT_PBKDF2_ITERATIONS,
    HANDSHAKE_UUID,
    MAX_LABEL_LENGTH,
    Challenge,
    Credentials,
    Hello,
    Proof,
    Welcome,
    client_proof,
    derive_key,
    proofs_match,
    server_proof,
)
from protocol_helpers import map_keys, values

CN, SN = b"c" * 16, b"s" * 16


def test_uuid_is_the_original_systems() -> None:
    assert HANDSHAKE_UUID == "7672FDB2-4D29-4F10-BA7C-8EAD0E29626E"


def test_key_and_proofs_follow_the_design() -> None:
    key = derive_key("pässword", b"salt", 1000)
    assert key == hashlib.pbkdf2_hmac("sha256", "pässword".encode(), b"salt", 1000, 32)
    assert client_proof(key, CN, SN) == hmac.new(key, b"client" + CN + SN, "sha256").digest()
    assert server_proof(key, CN, SN) == hmac.new(key, b"server" + CN + SN, "sha256").digest()
    assert client_proof(key, CN, SN) != server_proof(key, CN, SN)


def test_proofs_match_is_exact() -> None:
    proof = client_proof(b"k" * 32, CN, SN)
    assert proofs_match(proof, bytes(proof))
    assert not proofs_match(proof, proof[:-1] + bytes([proof[-1] ^ 1]))


def test_credentials_default_iterations_and_no_key_in_repr() -> None:
    creds = Credentials.from_password("pw", salt=b"fixed salt")
    assert creds.iterations == DEFAULT_PBKDF2_ITERATIONS == 600_000
    assert creds.key == derive_key("pw", b"fixed salt", DEFAULT_PBKDF2_ITERATIONS)
    assert creds.key.hex() not in repr(creds) and "key" not in repr(creds)


def test_credentials_refuse_weak_iteration_counts() -> None:
    with pytest.raises(ValueError):
        Credentials.from_password("pw", iterations=10)


MESSAGES = [
    Hello("3F21CC32", "worker-1", "meta.lan", CN),
    Challenge("kv-server 0.1.0", SN, b"salt", 1000),
    Proof(b"p" * 32),
    Welcome(42, b"q" * 32),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_messages_round_trip(message: object) -> None:
    assert type(message).from_wire(message.to_wire()) == message  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", [Hello, Challenge, Proof, Welcome])
@given(item=values | st.dictionaries(map_keys, values, max_size=6))
def test_arbitrary_input_is_refused_cleanly(cls: type, item: object) -> None:
    with contextlib.suppress(RemoteProtocolError):
        cls.from_wire(item)


def hello_with(**changes: object) -> dict[str, object]:
    wire = MESSAGES[0].to_wire()  # type: ignore[attr-defined]
    wire.update(changes)
    return wire  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"uuid": "00000000-0000-0000-0000-000000000000"}, "wrong handshake uuid"),
        ({"uuid": 5}, "wrong handshake uuid"),
        ({"version": 2}, "unsupported protocol version 2"),
        ({"version": True}, "unsupported protocol version"),
        ({"nonce": b"short"}, "nonce must be 16..256 bytes"),
        ({"nonce": "text"}, "nonce"),
        ({"name": "n" * (MAX_LABEL_LENGTH + 1)}, "at most 255 characters"),
        ({"name": "two words"}, "without spaces"),
        ({"hostname": "bell\a"}, "printable"),
        ({"version": 1 << 15000}, "unsupported protocol version <int of 15001 bits>"),
        ({"uuid": "x" * 10_000}, "wrong handshake uuid 'xxxx"),
        ({"id": 5}, "'id' must be str"),
    ],
)
def test_bad_hello_fields(changes: dict[str, object], match: str) -> None:
    with pytest.raises(RemoteProtocolError, match=match):
        Hello.from_wire(hello_with(**changes))


hello_fields = st.fixed_dictionaries(
    {},
    optional={
        "uuid": st.just(HANDSHAKE_UUID) | st.text(max_size=40) | st.integers(),
        "version": st.just(1) | st.integers() | st.just(1 << 15000) | st.booleans(),
        "id": st.text(max_size=10) | st.binary(max_size=4),
        "name": st.text(max_size=300) | st.none(),
        "hostname": st.text(max_size=10),
        "nonce": st.binary(max_size=300) | st.text(max_size=20),
        "proof": st.binary(min_size=30, max_size=34),
        "iterations": st.integers() | st.just(1 << 15000),
        "salt": st.binary(max_size=300),
        "ok": st.booleans() | st.integers(),
    },
)


@pytest.mark.parametrize("cls", [Hello, Challenge, Proof, Welcome])
@given(item=hello_fields)
def test_nearly_valid_messages_are_refused_cleanly(cls: type, item: dict[str, object]) -> None:
    with contextlib.suppress(RemoteProtocolError):
        cls.from_wire(item)


def test_uuid_is_case_insensitive_and_extra_fields_are_ignored() -> None:
    wire = hello_with(uuid=HANDSHAKE_UUID.lower(), future="field")
    assert Hello.from_wire(wire) == MESSAGES[0]


@pytest.mark.parametrize("iterations", [999, 10_000_001, True])
def test_client_refuses_unreasonable_iteration_counts(iterations: object) -> None:
    wire = MESSAGES[1].to_wire()  # type: ignore[attr-defined]
    wire["iterations"] = iterations
    with pytest.raises(RemoteProtocolError):
        Challenge.from_wire(wire)


def test_welcome_must_say_ok() -> None:
    with pytest.raises(RemoteProtocolError, match="'ok' must be true"):
        Welcome.from_wire({"ok": 1, "id": 1, "proof": b"q" * 32})
