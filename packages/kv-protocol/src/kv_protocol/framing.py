"""Frames: a 4-byte unsigned big-endian length N, then N bytes holding one CBOR item.

Rules of this module:

1. :meth:`FrameDecoder.feed` returns every complete item in the bytes fed so far
   and keeps the remainder; one call per ``receive_some`` suits pipelining.
2. A frame's length is checked against ``max_frame_size`` as soon as its 4 header
   bytes arrive, before its body is awaited or any large buffer is grown for it.
3. A frame body must hold exactly one well-formed CBOR item: no trailing bytes, no
   nesting deeper than ``max_depth``, no duplicate map keys, and no semantic tags
   except bignums (tags 2 and 3). Tags would let a peer build objects kv does not
   store (datetimes, regexes, sets) or cyclic structures (shared references).
4. Anything else raises :class:`RemoteProtocolError` and the decoder stays broken:
   after a framing error the byte stream cannot be resynchronised.
"""

from __future__ import annotations

import io
import struct
from typing import Final, NoReturn

import cbor2

from .errors import LocalProtocolError, RemoteProtocolError

HEADER: Final = struct.Struct(">I")
HEADER_SIZE: Final = HEADER.size

# 64 MiB: large enough for any sensible value (Redis allows 512 MB strings, but a
# Python server that buffers a whole frame should not let one peer pin more), small
# enough that a garbage length (an HTTP request read as a length is ~1.2 GB) fails fast.
DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024 * 1024
# 64 nested containers: deep enough for real documents, shallow enough that no
# recursive walk over a value (validation, encoding, persistence) nears Python's
# recursion limit.
DEFAULT_MAX_DEPTH: Final = 64
# Consumed bytes are dropped from the front of the buffer only past this size, so a
# peer that pipelines many small frames does not cause a copy per call.
_COMPACT_BYTES: Final = 64 * 1024

# Every semantic tag cbor2 decodes natively, except the bignums 2 and 3.
_NATIVE_TAGS: Final = (0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258,
                       260, 261, 1004, 55799)


def _reject_native_tag(value: object, immutable: bool) -> NoReturn:
    raise cbor2.CBORDecodeError("only the bignum tags (2 and 3) are allowed")


def _reject_tag(tag: cbor2.CBORTag, immutable: bool) -> NoReturn:
    raise cbor2.CBORDecodeError("only the bignum tags (2 and 3) are allowed")


_SEMANTIC_DECODERS: Final = dict.fromkeys(_NATIVE_TAGS, _reject_native_tag)


def encode_frame(item: object, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Encode one item as a frame.

    Raises:
        LocalProtocolError: the item cannot be encoded as CBOR, or its encoding is
            larger than ``max_frame_size`` (the peer would reject it).
    """
    try:
        body = cbor2.dumps(item)
    except (cbor2.CBOREncodeError, ValueError, TypeError) as exc:
        raise LocalProtocolError(f"cannot encode {type(item).__name__}: {exc}") from exc
    if len(body) > max_frame_size:
        raise LocalProtocolError(f"frame of {len(body)} bytes exceeds the limit of {max_frame_size}")
    return HEADER.pack(len(body)) + body


class FrameDecoder:
    """Turns a byte stream into decoded items, frame by frame.

    One ``BytesIO`` holds the unconsumed bytes and one ``CBORDecoder`` reads from
    it in place: no slice is copied per frame, and the decoder's position tells
    exactly how many bytes the item used, which is how trailing bytes are caught.
    """

    __slots__ = ("_broken", "_decoder", "_end", "_fp", "_pos", "max_depth", "max_frame_size")

    def __init__(
        self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, max_depth: int = DEFAULT_MAX_DEPTH
    ) -> None:
        if max_frame_size < 1 or max_depth < 1:
            raise ValueError("max_frame_size and max_depth must be positive")
        self.max_frame_size = max_frame_size
        self.max_depth = max_depth
        self._fp = io.BytesIO()
        self._pos = 0  # offset of the next frame header in _fp
        self._end = 0  # number of valid bytes in _fp
        self._broken: RemoteProtocolError | None = None
        self._decoder = cbor2.CBORDecoder(
            self._fp,
            max_depth=max_depth,
            semantic_decoders=_SEMANTIC_DECODERS,
            tag_hook=_reject_tag,
            allow_duplicate_keys=False,
        )

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as items (a partial frame)."""
        return self._end - self._pos

    def feed(self, data: bytes) -> list[object]:
        """Add received bytes; return every item that is now complete, in order.

        Raises:
            RemoteProtocolError: a frame is too large, empty or malformed. Every
                later call raises it again.
        """
        if self._broken is not None:
            raise self._broken
        fp = self._fp
        end = self._end
        if data:
            fp.seek(end)
            fp.write(data)
            end += len(data)
            self._end = end
        pos = self._pos
        items: list[object] = []
        append = items.append
        decode = self._decoder.decode
        read, tell = fp.read, fp.tell
        max_size = self.max_frame_size
        # The decoder leaves the file at the end of each item, where the next frame's
        # header starts: one seek per call, not one per frame.
        fp.seek(pos)
        while end - pos >= HEADER_SIZE:
            size = int.from_bytes(read(HEADER_SIZE), "big")
            if size > max_size:
                self._fail(f"frame of {size} bytes exceeds the limit of {max_size}")
            if size == 0:
                self._fail("empty frame: a frame holds exactly one CBOR item")
            stop = pos + HEADER_SIZE + size
            if stop > end:
                break
            try:
                item = decode()
            except (cbor2.CBORDecodeError, ValueError, OverflowError, RecursionError) as exc:
                self._fail(f"malformed CBOR in frame at byte {pos}: {exc}", exc)
            if tell() != stop:
                self._fail(f"frame of {size} bytes does not hold exactly one CBOR item")
            append(item)
            pos = stop
        if pos == end:
            pos = self._end = 0
            fp.seek(0)
            fp.truncate()
        elif pos > _COMPACT_BYTES:
            with fp.getbuffer() as view:
                rest = view[pos:end].tobytes()
            self._fp = fp = io.BytesIO(rest)
            self._decoder.fp = fp
            self._end = len(rest)
            pos = 0
        self._pos = pos
        return items

    def _fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        self._broken = RemoteProtocolError(message)
        raise self._broken from cause
