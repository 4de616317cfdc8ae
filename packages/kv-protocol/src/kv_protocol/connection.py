"""Connection state machines for both ends, sans-IO.

Rules of this module:

1. A connection moves HANDSHAKE -> READY -> CLOSED, or to ERROR from HANDSHAKE or
   READY; the allowed moves are the data in ``_MOVES`` and nothing else moves it.
2. The caller feeds received bytes to ``receive_data`` (``b""`` means EOF) and sends
   whatever ``data_to_send`` returns afterwards; nothing here touches a socket.
3. During the handshake each side handles one message at a time and lets nothing
   else through: a command that arrives before the handshake is refused (NOAUTH).
4. Once READY, ``receive_data`` returns the decoded frames as plain values, and any
   frames that arrived in the same bytes as the last handshake message come first.
5. Bad input raises: :class:`RemoteProtocolError` for malformed bytes or messages,
   a :class:`ServerError` subclass when the server must refuse with that code.
   Either way the connection is in ERROR; the server sends the matching error
   frame, then both sides close.
"""

from __future__ import annotations

import abc
import enum
import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from .errors import LocalProtocolError, NoAuthError, RemoteProtocolError, ServerError, WrongPassError
from .framing import DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_SIZE, FrameDecoder, encode_frame
from .handshake import (
    HANDSHAKE_MAX_FRAME_SIZE,
    Challenge,
    Credentials,
    Hello,
    Proof,
    Welcome,
    client_proof,
    derive_key,
    new_nonce,
    proofs_match,
    server_proof,
)
from .messages import decode_message
from .values import describe

_A = TypeVar("_A")
_R = TypeVar("_R")


class State(enum.Enum):
    HANDSHAKE = "handshake"
    READY = "ready"
    CLOSED = "closed"
    ERROR = "error"


_MOVES: Final[dict[State, frozenset[State]]] = {
    State.HANDSHAKE: frozenset({State.READY, State.CLOSED, State.ERROR}),
    State.READY: frozenset({State.CLOSED, State.ERROR}),
    State.ERROR: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Session:
    """What a client knows once the handshake succeeded."""

    connection_id: int
    server: str


class _Connection(abc.ABC):
    """Shared mechanics: state moves, the frame decoder and the outgoing buffer."""

    def __init__(self, max_frame_size: int, max_depth: int) -> None:
        self.state = State.HANDSHAKE
        self.max_frame_size = max_frame_size
        # The handshake runs under a small frame limit; READY lifts it.
        self.decoder = FrameDecoder(min(HANDSHAKE_MAX_FRAME_SIZE, max_frame_size), max_depth)
        self._outgoing = bytearray()

    def _move(self, new: State) -> None:
        if new not in _MOVES[self.state]:
            raise LocalProtocolError(f"cannot move from state {self.state.name} to {new.name}")
        self.state = new
        if new is State.READY:
            self.decoder.max_frame_size = self.max_frame_size

    def _queue(self, item: object) -> None:
        self._outgoing += encode_frame(item, self.max_frame_size)

    def data_to_send(self) -> bytes:
        """Bytes the caller must send now (empty when there are none)."""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def close(self) -> None:
        """Mark the connection closed (the caller closes its transport)."""
        if self.state is not State.CLOSED:
            self._move(State.CLOSED)

    def receive_data(self, data: bytes) -> list[object]:
        """Feed received bytes; see the module rules for what comes back."""
        if self.state is State.READY:
            if not data:
                self._move(State.CLOSED)
                return []
            return self._guard(self.decoder.feed, data)
        if self.state is not State.HANDSHAKE:
            raise LocalProtocolError(f"cannot receive data in state {self.state.name}")
        if not data:
            self._move(State.CLOSED)
            return []
        items = self._guard(self.decoder.feed, data)
        for index, item in enumerate(items):
            if self._guard(self._handshake_step, item):
                self._move(State.READY)
                return items[index + 1 :]
        return []

    def _guard(self, step: Callable[[_A], _R], arg: _A) -> _R:
        try:
            return step(arg)
        except (RemoteProtocolError, ServerError):
            self.state = State.ERROR
            raise

    @abc.abstractmethod
    def _handshake_step(self, item: object) -> bool:
        """Handle one handshake message; True once the handshake is complete."""


class ServerConnection(_Connection):
    """The server's end: checks the client's hello and proof, proves itself back.

    With ``readonly_key`` (``derive_key`` of a second password with the salt and
    iterations of ``credentials``) a proof made with either key is accepted, and
    ``readonly`` tells which one it was. Both proofs are always computed and compared
    in constant time, so neither the answer nor its timing says which key a wrong
    proof came closer to; the welcome is signed with the key that matched, so
    clients verify it unchanged.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        connection_id: int,
        server_name: str,
        readonly_key: bytes | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        nonce: bytes | None = None,
    ) -> None:
        super().__init__(max_frame_size, max_depth)
        self.credentials = credentials
        self.connection_id = connection_id
        self.server_name = server_name
        self._readonly_key = readonly_key
        self.nonce = new_nonce() if nonce is None else nonce
        self.hello: Hello | None = None
        self.readonly = False
        """Whether the client proved the read-only password (meaningful once READY)."""

    def _handshake_step(self, item: object) -> bool:
        if type(item) is list:
            raise NoAuthError()
        if self.hello is None:
            self.hello = Hello.from_wire(item)
            creds = self.credentials
            self._queue(Challenge(self.server_name, self.nonce, creds.salt, creds.iterations).to_wire())
            return False
        proof = Proof.from_wire(item).proof
        key, cn, sn = self.credentials.key, self.hello.nonce, self.nonce
        accepted = proofs_match(client_proof(key, cn, sn), proof)
        if self._readonly_key is not None:
            # Computed and compared whatever the first comparison found (see the class).
            readonly = proofs_match(client_proof(self._readonly_key, cn, sn), proof)
            if readonly and not accepted:
                key, self.readonly = self._readonly_key, True
            accepted = accepted or readonly
        if not accepted:
            raise WrongPassError()
        self._queue(Welcome(self.connection_id, server_proof(key, cn, sn)).to_wire())
        return True


# Clients cache K per (password, salt, iterations): the salt is fixed for the life of
# a server process, so a client process pays PBKDF2 once per server start, not once
# per connection (connection pools, CLI polling, 200 concurrent connections).
_cached_key = functools.lru_cache(maxsize=16)(derive_key)


class ClientConnection(_Connection):
    """The client's end: sends the hello, answers the challenge, checks the server."""

    def __init__(
        self,
        password: str,
        *,
        name: str = "",
        client_id: str | None = None,
        hostname: str = "",
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        nonce: bytes | None = None,
    ) -> None:
        super().__init__(max_frame_size, max_depth)
        self._password = password
        client_id = secrets.token_hex(4).upper() if client_id is None else client_id
        self.hello = Hello(client_id, name, hostname, new_nonce() if nonce is None else nonce)
        self.session: Session | None = None
        self._challenge: Challenge | None = None
        self._queue(self.hello.to_wire())

    def send_command(self, argv: Sequence[object]) -> bytes:
        """The frame for one command; only once the handshake succeeded."""
        if self.state is not State.READY:
            raise LocalProtocolError(f"cannot send a command in state {self.state.name}")
        return encode_frame(list(argv), self.max_frame_size)

    def _handshake_step(self, item: object) -> bool:
        if type(item) is list:  # an error reply instead of the next handshake message
            _, payload = decode_message(item)
            if isinstance(payload, ServerError):
                raise payload
            raise RemoteProtocolError(f"expected a handshake message, got {describe(item)}")
        if self._challenge is None:
            self._challenge = ch = Challenge.from_wire(item)
            key = _cached_key(self._password, ch.salt, ch.iterations)
            self._queue(Proof(client_proof(key, self.hello.nonce, ch.nonce)).to_wire())
            return False
        welcome = Welcome.from_wire(item)
        ch = self._challenge
        key = _cached_key(self._password, ch.salt, ch.iterations)
        if not proofs_match(server_proof(key, self.hello.nonce, ch.nonce), welcome.proof):
            raise RemoteProtocolError("the server's proof does not verify: it does not know the password")
        self.session = Session(welcome.connection_id, ch.server)
        return True
