"""The sans-IO client core: everything the blocking and async clients share.

Rules of this module:

1. Nothing here does I/O. A shell opens the socket, sends what the core gives it and
   feeds the core what it receives; the handshake, request encoding, reply
   decoding and error mapping all live here, once.
2. Replies come back in request order. Pushes (``[2, kind, ...]``) are kept apart in
   ``pushes``, so a push is never taken for a reply.
3. An error reply is returned as the :class:`ServerError` instance in the reply
   list (no decoded value can be one), as is a reply that cannot be decrypted
   (:class:`DecryptionError`); the shell raises it, a pipeline can keep every
   result instead.
4. When the server closes the connection, the error says why if the server said
   so first (a ``kill`` push: CLIENT KILL or shutdown).
5. After a broken connection, only commands that cannot change anything are sent
   again (:func:`may_retry`), unless the caller asked for writes too; blocking
   commands (BLPOP...) never are.
6. A blocking command's reply may take its whole timeout to come, so the request
   waits that long on top of the client's timeout (:func:`request_timeout`).
"""

from __future__ import annotations

import math
import platform
from collections import deque
from collections.abc import Sequence
from typing import Final

from kv_protocol.commands import COMMANDS, Flag, resolve
from kv_protocol.connection import ClientConnection, Session, State
from kv_protocol.errors import KvError, LocalProtocolError
from kv_protocol.framing import DEFAULT_MAX_FRAME_SIZE, encode_frame
from kv_protocol.messages import PUSH, REPLY, Push, decode_message
from kv_protocol.values import is_value, type_name

from ._config import ClientConfig
from ._encryption import DecryptionError, decrypt_reply, encrypt_arguments
from ._errors import ConnectionError

RECEIVE_BYTES: Final = 65536
"""One read's size: large enough that a pipeline's replies usually arrive in one."""


class ClientCore:
    """One connection's protocol state, from the hello to the replies."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.connection = ClientConnection(config.password, name=config.name,
                                           hostname=platform.node())
        self.pushes: deque[Push] = deque()
        """Pushes received and not yet consumed."""
        self.close_reason: str | None = None
        """Why the server said it would close the connection, if it did."""

    @property
    def session(self) -> Session | None:
        return self.connection.session

    def data_to_send(self) -> bytes:
        return self.connection.data_to_send()

    def receive_handshake(self, data: bytes) -> bool:
        """Feed handshake bytes; True once the handshake succeeded.

        Raises:
            ConnectionError: the server closed the connection first.
            ServerError: the server refused us (``WrongPassError``, ``ProtoError``...).
            RemoteProtocolError: the server is not a kv server, or does not know the
                password.
        """
        if not data:
            raise ConnectionError(f"{self.config.address} closed the connection during the handshake")
        self.connection.receive_data(data)
        return self.connection.state is State.READY

    def receive_replies(self, data: bytes) -> list[object]:
        """Feed bytes; the replies now complete (values, or KvError instances)."""
        if not data:
            raise self.closed_error()
        replies: list[object] = []
        for item in self.connection.receive_data(data):
            if type(item) is list and len(item) == 2 and item[0] == REPLY and type(item[0]) is int:
                replies.append(item[1])
                continue
            kind, payload = decode_message(item)
            if kind == PUSH:
                assert isinstance(payload, Push)
                if payload.kind == "kill" and payload.data:
                    self.close_reason = str(payload.data[0])
                self.pushes.append(payload)
            else:
                replies.append(payload)
        return replies

    def closed_error(self) -> ConnectionError:
        reason = f": {self.close_reason}" if self.close_reason else ""
        return ConnectionError(f"{self.config.address} closed the connection{reason}")


PING: Final = encode_frame(["PING"], DEFAULT_MAX_FRAME_SIZE)
"""The health check of a long-idle pooled connection, encoded once."""


def encode_request(config: ClientConfig, commands: Sequence[Sequence[object]]) -> bytes:
    """The frames of a request, made before a connection is taken for it.

    So a local error (a value kv cannot store, a command encryption refuses)
    costs no connection: nothing was sent, and the connection stays pooled.

    Raises:
        LocalProtocolError: an argument is not something kv can store or send.
        EncryptionError: with ``config.encryption``, a command that cannot work on
            ciphertext, or a failing cipher.
    """
    cipher = config.encryption
    frames = []
    for args in commands:
        if not args or not isinstance(args[0], str):
            raise LocalProtocolError("a command starts with its name, as text")
        for index, arg in enumerate(args):
            if not is_value(arg):
                raise LocalProtocolError(
                    f"argument {index} of {args[0]!r} is a {type_name(arg)}; kv sends null, bool, "
                    "int, float, text, bytes, lists and maps (with scalar keys)"
                )
        frames.append(encode_frame(list(args) if cipher is None else encrypt_arguments(args, cipher),
                                   DEFAULT_MAX_FRAME_SIZE))
    return b"".join(frames)


def decrypt_replies(config: ClientConfig, commands: Sequence[Sequence[object]],
                    replies: list[object]) -> list[object]:
    """The replies with their encrypted values decrypted, when the client encrypts.

    A value that cannot be decrypted becomes its :class:`DecryptionError` in the
    list, as error replies are, so that a pipeline keeps every other result. A
    cipher that fails with anything else is reported the same way, typed.
    """
    cipher = config.encryption
    if cipher is None:
        return replies
    decrypted: list[object] = []
    for args, reply in zip(commands, replies, strict=True):
        try:
            decrypted.append(reply if isinstance(reply, KvError) else decrypt_reply(args, reply, cipher))
        except DecryptionError as exc:
            decrypted.append(exc)
        except Exception as exc:  # a user's cipher: whatever it raises, the reply is lost
            decrypted.append(DecryptionError(f"the {cipher.name} cipher failed: {exc!r}"))
    return decrypted


def may_retry(config: ClientConfig, commands: Sequence[Sequence[object]]) -> bool:
    """Whether ``commands`` may be sent again after their connection broke.

    Their fate is unknown: they may have run. Running a read-only command twice
    changes nothing; anything else (a write, an admin command, a command the table
    does not know) is sent again only when the caller set ``retry_writes``. A
    blocking pop never is: ``retry_writes`` vouches for writes that may run twice,
    and a second pop takes a second element.
    """
    for args in commands:
        spec = resolve(args)
        if spec is not None and spec.flags & Flag.READONLY:
            continue
        if not config.retry_writes or (spec is not None and spec.flags & Flag.BLOCKING):
            return False
    return True


BLOCKING: Final = frozenset(spec.name for spec in COMMANDS if spec.flags & Flag.BLOCKING)
"""Commands that may hold their reply back (BLPOP...): one-word names, so that a
request's commands are checked without resolving each one."""


def request_timeout(config: ClientConfig, commands: Sequence[Sequence[object]]) -> float | None:
    """How long a request may wait for its replies: the client's timeout, plus the
    time each blocking command may wait (its last argument, in seconds).

    None, waiting for ever, when the client has no timeout or a command blocks for
    ever (a timeout of 0). A timeout that is not a finite number of seconds, 0 or
    more, adds nothing: the server refuses it at once. Inside MULTI a blocking command does not wait,
    so a transaction's request uses the client's timeout as it is.
    """
    timeout = config.timeout_s
    if timeout is None:
        return None
    for args in commands:
        if not args or type(args[0]) is not str or args[0].upper() not in BLOCKING:
            continue
        wait = args[-1]
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
            continue
        if wait == 0:
            return None
        if wait > 0:
            timeout += wait
    return timeout
