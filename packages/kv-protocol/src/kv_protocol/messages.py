"""Message envelopes after the handshake.

Client to server, a command is an array ``[name, arg1, ...]``. Server to client:

- ``[0, value]``: success, ``value`` is the reply;
- ``[1, code, message]``: an error reply, the connection stays usable;
- ``[2, kind, ...]``: a push (pub/sub message, kill notice), never a reply.

Replies are plain values on the hot path (no object per reply); only pushes, which
are rare, become :class:`Push` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cbor2

from .errors import LocalProtocolError, RemoteProtocolError, ServerError, error_from_wire
from .framing import DEFAULT_MAX_FRAME_SIZE, HEADER, HEADER_SIZE, encode_frame
from .values import describe

REPLY: Final = 0
ERROR: Final = 1
PUSH: Final = 2

# cbor2 encodes a 2-element array much more slowly than the element alone (about
# 1.2 us against 0.2 us), so success replies are built from this fixed prefix: the
# CBOR head of a 2-element array (0x82) followed by the integer 0.
_REPLY_PREFIX: Final = b"\x82\x00"
# Most replies are short text or bytes, null or a small count. Their frames start
# with a prefix that depends only on the type and length, so these tables hold the
# whole prefix (frame length, envelope, CBOR head) and a reply costs one
# concatenation instead of a call into cbor2. The heads are CBOR's shortest form,
# which is what cbor2 writes: one byte below 24, then 0x58/0x78 and a length byte.


def _prefixes(major: int) -> tuple[bytes, ...]:
    heads = [bytes([major | n]) for n in range(24)] + [bytes([major | 24, n]) for n in range(24, 256)]
    return tuple(HEADER.pack(n + 2 + len(head)) + _REPLY_PREFIX + head for n, head in enumerate(heads))


_BYTES_PREFIX: Final = _prefixes(0x40)
_TEXT_PREFIX: Final = _prefixes(0x60)
_SMALL_INT_REPLY: Final = tuple(HEADER.pack(3) + _REPLY_PREFIX + bytes([n]) for n in range(24))
_NULL_REPLY: Final = HEADER.pack(3) + _REPLY_PREFIX + b"\xf6"

# Bytes a reply adds around a text or bytes value of any size: the frame length, the
# envelope, the CBOR head. Values stay this much below the frame limit.
REPLY_OVERHEAD_BYTES: Final = 16

OK: Final = "OK"
"""The status most write commands answer; returning this object hits a ready frame."""
_OK_REPLY: Final = _TEXT_PREFIX[2] + b"OK"


class Encoded:
    """A reply already encoded as a whole frame (EXEC's list of envelopes)."""

    __slots__ = ("frame",)

    def __init__(self, frame: bytes) -> None:
        self.frame = frame


def encode_envelopes(frames: list[bytes], max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """The reply frame ``[0, [envelope, ...]]`` built from the frames of other replies.

    Each frame's body is already the CBOR of its envelope (``[0, value]`` or ``[1,
    code, message]``), so the list is their concatenation behind a CBOR array head:
    EXEC answers every queued command's reply without decoding one.

    Raises:
        LocalProtocolError: the frame would exceed ``max_frame_size``.
    """
    n = len(frames)
    if n < 24:
        head = bytes([0x80 | n])
    elif n < 0x10000:
        head = (b"\x98" + bytes([n])) if n < 256 else b"\x99" + n.to_bytes(2, "big")
    else:
        head = b"\x9a" + n.to_bytes(4, "big")
    body = _REPLY_PREFIX + head + b"".join(frame[HEADER_SIZE:] for frame in frames)
    if len(body) > max_frame_size:
        raise LocalProtocolError(
            f"a reply of {len(body)} bytes exceeds the frame limit of {max_frame_size}")
    return HEADER.pack(len(body)) + body


@dataclass(frozen=True, slots=True)
class Push:
    """A message the server sent on its own (``[2, kind, *data]``)."""

    kind: str
    data: tuple[object, ...]


def encode_reply(value: object, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """The frame for a success reply ``[0, value]``.

    Raises:
        LocalProtocolError: the frame would exceed ``max_frame_size``, so the peer
            would refuse it (the server answers TOOBIG instead).
    """
    if value is OK:
        return _OK_REPLY
    if isinstance(value, bytes):
        if len(value) < 256:
            return _BYTES_PREFIX[len(value)] + value
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) < 256:
            return _TEXT_PREFIX[len(raw)] + raw
    elif value is None:
        return _NULL_REPLY
    elif type(value) is int and 0 <= value < 24:  # exact type: a bool is not an int here
        return _SMALL_INT_REPLY[value]
    elif type(value) is Encoded:
        return value.frame
    body = cbor2.dumps(value)
    if len(body) + 2 > max_frame_size:
        raise LocalProtocolError(
            f"a reply of {len(body) + 2} bytes exceeds the frame limit of {max_frame_size}")
    return HEADER.pack(len(body) + 2) + _REPLY_PREFIX + body


def encode_error(error: ServerError) -> bytes:
    """The frame for an error reply ``[1, code, message]``."""
    return encode_frame(error.to_wire())


def encode_push(kind: str, *data: object) -> bytes:
    """The frame for a push ``[2, kind, *data]``."""
    return encode_frame([PUSH, kind, *data])


def decode_message(item: object) -> tuple[int, object]:
    """Classify one frame received by a client.

    Returns:
        ``(REPLY, value)``, ``(ERROR, ServerError)`` or ``(PUSH, Push)``; the error
        is returned, not raised, so that a pipeline can keep every result.

    Raises:
        RemoteProtocolError: the item is not one of the three envelopes.
    """
    if type(item) is list and item:
        tag = item[0]
        if tag == REPLY and type(tag) is int and len(item) == 2:
            return REPLY, item[1]
        if tag == ERROR and type(tag) is int and len(item) == 3:
            return ERROR, error_from_wire(item[1], item[2])
        if tag == PUSH and type(tag) is int and len(item) >= 2 and type(item[1]) is str:
            return PUSH, Push(item[1], tuple(item[2:]))
    raise RemoteProtocolError(
        f"expected [0, value], [1, code, message] or [2, kind, ...], got {describe(item)}")
