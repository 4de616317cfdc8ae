"""The handshake: message shapes, key derivation and the mutual HMAC proofs.

The password never crosses the wire and both sides prove they know it:

1. client -> ``Hello``: the handshake UUID, protocol version, client id, name,
   hostname and a fresh client nonce ``cn``;
2. server -> ``Challenge``: server name, a fresh server nonce ``sn``, and the salt
   and iteration count of ``K = PBKDF2-HMAC-SHA256(password, salt, n, dklen=32)``;
3. client -> ``Proof``: ``HMAC-SHA256(K, b"client" + cn + sn)``;
4. server -> ``Welcome``: the connection id and ``HMAC-SHA256(K, b"server" + cn + sn)``,
   which the client checks, so a server that does not know the password is caught.

Proofs are compared in constant time (``hmac.compare_digest``). Both nonces enter
both proofs, so a recorded proof is useless on a later connection.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Final, TypeVar

from .errors import RemoteProtocolError
from .values import describe

HANDSHAKE_UUID: Final = "7672FDB2-4D29-4F10-BA7C-8EAD0E29626E"
PROTOCOL_VERSION: Final = 1

# 16 random bytes (128 bits) make a nonce collision across connections negligible;
# the upper bound only stops a peer from making us hash megabytes per handshake.
NONCE_BYTES: Final = 16
MAX_NONCE_BYTES: Final = 256
SALT_BYTES: Final = 16
MAX_SALT_BYTES: Final = 256
# OWASP's 2023 figure for PBKDF2-HMAC-SHA256: about 0.2 s on the machines we test on,
# paid once per server start and once per client process and server start (clients
# cache K), and it makes each guess against a captured handshake cost as much.
DEFAULT_PBKDF2_ITERATIONS: Final = 600_000
# Bounds a client accepts from a server: below the minimum the proof is too cheap to
# brute-force offline; above the maximum a fake server could stall the client.
MIN_PBKDF2_ITERATIONS: Final = 1_000
MAX_PBKDF2_ITERATIONS: Final = 10_000_000
# Names, ids and hostnames are labels for humans; 255 characters is DNS's own limit.
MAX_LABEL_LENGTH: Final = 255
# A handshake message is a small flat map; this bounds what an unauthenticated peer
# can make the server buffer.
HANDSHAKE_MAX_FRAME_SIZE: Final = 4096
PROOF_BYTES: Final = 32

_T = TypeVar("_T")


def derive_key(password: str, salt: bytes, iterations: int) -> bytes:
    """``K = PBKDF2-HMAC-SHA256(password as UTF-8, salt, iterations, dklen=32)``."""
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=32)


def client_proof(key: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """The client's proof: ``HMAC-SHA256(K, b"client" + cn + sn)``."""
    return hmac.new(key, b"client" + client_nonce + server_nonce, hashlib.sha256).digest()


def server_proof(key: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """The server's proof: ``HMAC-SHA256(K, b"server" + cn + sn)``."""
    return hmac.new(key, b"server" + client_nonce + server_nonce, hashlib.sha256).digest()


def proofs_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison of two proofs."""
    return hmac.compare_digest(expected, received)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the server keeps of its password: the derived key, never the text."""

    salt: bytes
    iterations: int
    key: bytes = field(repr=False)

    @classmethod
    def from_password(
        cls, password: str, iterations: int = DEFAULT_PBKDF2_ITERATIONS, salt: bytes | None = None
    ) -> Credentials:
        if not MIN_PBKDF2_ITERATIONS <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise ValueError(
                f"iterations must be within {MIN_PBKDF2_ITERATIONS}..{MAX_PBKDF2_ITERATIONS}"
            )
        salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
        return cls(salt, iterations, derive_key(password, salt, iterations))


def _field(message: dict[object, object], name: str, kind: type[_T], what: str) -> _T:
    value = message.get(name)
    if type(value) is not kind:
        raise RemoteProtocolError(f"{what}: field {name!r} must be {kind.__name__}, got {describe(value)}")
    return value


def is_label(text: str, *, spaces: bool = False) -> bool:
    """Names, ids and hostnames: printable, no spaces, at most 255 characters.

    The rule of Redis's CLIENT SETNAME, so that listings of clients stay readable;
    ``spaces`` admits plain spaces (a server name such as "kv-server 0.1.0").
    """
    return (len(text) <= MAX_LABEL_LENGTH and text.isprintable()
            and not any(c.isspace() and not (spaces and c == " ") for c in text))


def _label(message: dict[object, object], name: str, what: str, *, spaces: bool = False) -> str:
    value = _field(message, name, str, what)
    if not is_label(value, spaces=spaces):
        raise RemoteProtocolError(
            f"{what}: field {name!r} must be printable text{'' if spaces else ' without spaces'}, at most "
            f"{MAX_LABEL_LENGTH} characters"
        )
    return value


def _nonce(message: dict[object, object], name: str, what: str, low: int, high: int) -> bytes:
    value = _field(message, name, bytes, what)
    if not low <= len(value) <= high:
        raise RemoteProtocolError(f"{what}: {name} must be {low}..{high} bytes, got {len(value)}")
    return value


def _map(item: object, what: str) -> dict[object, object]:
    if type(item) is not dict:
        raise RemoteProtocolError(f"expected the {what} map, got {type(item).__name__}")
    return item


def _check_uuid_and_version(message: dict[object, object], what: str) -> None:
    uuid = message.get("uuid")
    if type(uuid) is not str or uuid.upper() != HANDSHAKE_UUID:
        raise RemoteProtocolError(
            f"{what}: wrong handshake uuid {describe(uuid)}; this is kv {HANDSHAKE_UUID}")
    version = message.get("version")
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise RemoteProtocolError(
            f"{what}: unsupported protocol version {describe(version)}; this side speaks {PROTOCOL_VERSION}"
        )


@dataclass(frozen=True, slots=True)
class Hello:
    """Client -> server, first message."""

    client_id: str
    name: str
    hostname: str
    nonce: bytes

    def to_wire(self) -> dict[str, object]:
        return {"uuid": HANDSHAKE_UUID, "version": PROTOCOL_VERSION, "id": self.client_id,
                "name": self.name, "hostname": self.hostname, "nonce": self.nonce}

    @classmethod
    def from_wire(cls, item: object) -> Hello:
        msg = _map(item, "hello")
        _check_uuid_and_version(msg, "hello")
        return cls(_label(msg, "id", "hello"), _label(msg, "name", "hello"),
                   _label(msg, "hostname", "hello"),
                   _nonce(msg, "nonce", "hello", NONCE_BYTES, MAX_NONCE_BYTES))


@dataclass(frozen=True, slots=True)
class Challenge:
    """Server -> client: the server nonce and how to derive K."""

    server: str
    nonce: bytes
    salt: bytes
    iterations: int

    def to_wire(self) -> dict[str, object]:
        return {"uuid": HANDSHAKE_UUID, "version": PROTOCOL_VERSION, "server": self.server,
                "nonce": self.nonce, "salt": self.salt, "iterations": self.iterations}

    @classmethod
    def from_wire(cls, item: object) -> Challenge:
        msg = _map(item, "challenge")
        _check_uuid_and_version(msg, "challenge")
        iterations = _field(msg, "iterations", int, "challenge")
        if not MIN_PBKDF2_ITERATIONS <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise RemoteProtocolError(
                f"challenge: {describe(iterations)} PBKDF2 iterations is outside "
                f"{MIN_PBKDF2_ITERATIONS}..{MAX_PBKDF2_ITERATIONS}"
            )
        return cls(_label(msg, "server", "challenge", spaces=True),
                   _nonce(msg, "nonce", "challenge", NONCE_BYTES, MAX_NONCE_BYTES),
                   _nonce(msg, "salt", "challenge", 1, MAX_SALT_BYTES), iterations)


@dataclass(frozen=True, slots=True)
class Proof:
    """Client -> server: the client's HMAC proof."""

    proof: bytes

    def to_wire(self) -> dict[str, object]:
        return {"proof": self.proof}

    @classmethod
    def from_wire(cls, item: object) -> Proof:
        msg = _map(item, "proof")
        return cls(_nonce(msg, "proof", "proof", PROOF_BYTES, PROOF_BYTES))


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server -> client: accepted; the connection id and the server's proof."""

    connection_id: int
    proof: bytes

    def to_wire(self) -> dict[str, object]:
        return {"ok": True, "id": self.connection_id, "proof": self.proof}

    @classmethod
    def from_wire(cls, item: object) -> Welcome:
        msg = _map(item, "welcome")
        if msg.get("ok") is not True:
            raise RemoteProtocolError("welcome: field 'ok' must be true")
        proof = _nonce(msg, "proof", "welcome", PROOF_BYTES, PROOF_BYTES)
        return cls(_field(msg, "id", int, "welcome"), proof)
