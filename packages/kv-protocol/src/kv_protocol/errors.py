"""Error codes and the exception tree shared by server, client and tools.

An error reply on the wire is ``[1, code, message]``. The code is data (an
:class:`ErrorCode`), and :data:`EXCEPTION_CLASSES` maps every code to exactly one
exception class: the server turns a raised exception into a reply with
:func:`ServerError.to_wire`, and the client turns a reply back into the same class
with :func:`error_from_wire`. Whose fault an error is shows in the tree::

    KvError
    ├── ProtocolError                 the bytes or messages break the wire protocol
    │   ├── LocalProtocolError        we were about to send something invalid
    │   └── RemoteProtocolError       the peer sent something invalid
    └── ServerError                   an error reply; ``.code`` says which (ERR)
        ├── WrongTypeError            WRONGTYPE   key (or value) of the wrong kind
        ├── ArgumentTypeError         ARGTYPE     argument of the wrong type for its position
        ├── CommandSyntaxError        SYNTAX      bad option, token or subcommand
        ├── NoKeyError                NOKEY       the command needs an existing key
        ├── OutOfRangeError           OUTOFRANGE  index or value outside the allowed range
        ├── NotIntegerError           NOTINTEGER  value or argument is not an integer
        ├── NotFloatError             NOTFLOAT    value is not a number a float can hold
        ├── ExecAbortError            EXECABORT   transaction discarded by earlier errors
        ├── ProtoError                PROTO       the server rejected our frame, then closes
        ├── TooBigError               TOOBIG      a size limit was exceeded
        ├── BusyError                 BUSY        the server is busy with a conflicting job
        ├── LoadingError              LOADING     the server is still loading its data
        ├── MisconfError              MISCONF     writes refused: the AOF cannot be written
        ├── NoPermError               NOPERM      a read-only connection sent a write or admin command
        ├── OomError                  OOM         over --maxmemory and nothing (more) to evict
        └── AuthError
            ├── NoAuthError           NOAUTH      a command arrived before the handshake
            └── WrongPassError        WRONGPASS   the password proof did not verify

The fuzzing invariant (as in h11): any bytes fed to a decoder either decode or raise
:class:`RemoteProtocolError`, never anything else.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final

from .values import describe


class ErrorCode(enum.StrEnum):
    """The error codes that may appear in ``[1, code, message]``."""

    ERR = "ERR"
    WRONGTYPE = "WRONGTYPE"
    ARGTYPE = "ARGTYPE"
    SYNTAX = "SYNTAX"
    NOKEY = "NOKEY"
    OUTOFRANGE = "OUTOFRANGE"
    NOTINTEGER = "NOTINTEGER"
    NOTFLOAT = "NOTFLOAT"
    EXECABORT = "EXECABORT"
    PROTO = "PROTO"
    TOOBIG = "TOOBIG"
    BUSY = "BUSY"
    LOADING = "LOADING"
    MISCONF = "MISCONF"
    NOPERM = "NOPERM"
    OOM = "OOM"
    NOAUTH = "NOAUTH"
    WRONGPASS = "WRONGPASS"


class KvError(Exception):
    """Root of every exception kv raises on purpose."""


class ProtocolError(KvError):
    """Bytes or messages that violate the wire protocol."""


class LocalProtocolError(ProtocolError):
    """We were about to do something the protocol forbids (a bug on our side)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes or a message the protocol does not allow."""


class ServerError(KvError):
    """An error reply ``[1, code, message]``; the connection stays usable.

    Subclasses fix ``code``; a code this version does not know keeps the generic
    class and carries the code it was given, so newer servers stay readable.
    """

    code: str = ErrorCode.ERR
    default_message: ClassVar[str] = "error"

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message if message is not None else self.default_message
        if code is not None:
            self.code = code
        super().__init__(f"{self.code} {self.message}")

    def to_wire(self) -> list[object]:
        """The reply array the server sends for this error."""
        return [1, str(self.code), self.message]


class WrongTypeError(ServerError):
    code = ErrorCode.WRONGTYPE
    default_message = "Operation against a key holding the wrong kind of value"


class ArgumentTypeError(ServerError):
    code = ErrorCode.ARGTYPE
    default_message = "argument has the wrong type"


class CommandSyntaxError(ServerError):
    code = ErrorCode.SYNTAX
    default_message = "syntax error"


class NoKeyError(ServerError):
    code = ErrorCode.NOKEY
    default_message = "no such key"


class OutOfRangeError(ServerError):
    code = ErrorCode.OUTOFRANGE
    default_message = "index out of range"


class NotIntegerError(ServerError):
    code = ErrorCode.NOTINTEGER
    default_message = "value is not an integer or out of range"


class NotFloatError(ServerError):
    code = ErrorCode.NOTFLOAT
    default_message = "value is not a valid float"


class ExecAbortError(ServerError):
    code = ErrorCode.EXECABORT
    default_message = "Transaction discarded because of previous errors."


class ProtoError(ServerError):
    code = ErrorCode.PROTO
    default_message = "protocol error"


class TooBigError(ServerError):
    code = ErrorCode.TOOBIG
    default_message = "size limit exceeded"


class BusyError(ServerError):
    code = ErrorCode.BUSY
    default_message = "the server is busy"


class LoadingError(ServerError):
    code = ErrorCode.LOADING
    default_message = "the server is loading the dataset in memory"


class MisconfError(ServerError):
    """Writes are refused because the server cannot persist them (Redis's MISCONF)."""

    code = ErrorCode.MISCONF
    default_message = "writes are refused: the append-only file cannot be written"


class OomError(ServerError):
    """The server is over ``--maxmemory`` and its policy cannot make room (Redis's OOM)."""

    code = ErrorCode.OOM
    default_message = "command not allowed when used memory > 'maxmemory'"


class NoPermError(ServerError):
    """A read-only connection (the read-only password) asked for a write or admin command.

    Unlike :class:`AuthError` the connection stays open: its reads keep working.
    """

    code = ErrorCode.NOPERM
    default_message = "this connection is read-only"


class AuthError(ServerError):
    """Authentication failed or is missing; the server closes the connection."""


class NoAuthError(AuthError):
    code = ErrorCode.NOAUTH
    default_message = "authentication required: complete the handshake first"


class WrongPassError(AuthError):
    code = ErrorCode.WRONGPASS
    default_message = "invalid password"


EXCEPTION_CLASSES: Final[dict[str, type[ServerError]]] = {
    ErrorCode.ERR: ServerError,
    ErrorCode.WRONGTYPE: WrongTypeError,
    ErrorCode.ARGTYPE: ArgumentTypeError,
    ErrorCode.SYNTAX: CommandSyntaxError,
    ErrorCode.NOKEY: NoKeyError,
    ErrorCode.OUTOFRANGE: OutOfRangeError,
    ErrorCode.NOTINTEGER: NotIntegerError,
    ErrorCode.NOTFLOAT: NotFloatError,
    ErrorCode.EXECABORT: ExecAbortError,
    ErrorCode.PROTO: ProtoError,
    ErrorCode.TOOBIG: TooBigError,
    ErrorCode.OOM: OomError,
    ErrorCode.BUSY: BusyError,
    ErrorCode.LOADING: LoadingError,
    ErrorCode.MISCONF: MisconfError,
    ErrorCode.NOPERM: NoPermError,
    ErrorCode.NOAUTH: NoAuthError,
    ErrorCode.WRONGPASS: WrongPassError,
}


def error_from_wire(code: object, message: object) -> ServerError:
    """Build the exception for an error reply received from the peer.

    Raises:
        RemoteProtocolError: code or message is not text.
    """
    if type(code) is not str or type(message) is not str:
        raise RemoteProtocolError(f"error reply needs text code and message, got {describe(code)}")
    cls = EXCEPTION_CLASSES.get(code)
    if cls is None:
        return ServerError(message, code=code)
    return cls(message)
