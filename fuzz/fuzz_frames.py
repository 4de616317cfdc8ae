"""atheris harness: ``FrameDecoder.feed`` on arbitrary bytes cut into arbitrary chunks.

The invariant kv_protocol.errors states (h11's): any bytes either decode or raise
``RemoteProtocolError``, never anything else. Beside it, what the framing module's
rules promise and a server relies on:

- the answer does not depend on how the bytes were cut (a ``receive_some`` can end
  anywhere): decoding chunk by chunk and all at once agree on items and on failure;
- a decoder that failed stays failed and raises the same error again (rule 4);
- after a successful feed it holds less than one frame (``buffered``), so a peer
  cannot make it hold more than ``max_frame_size`` plus a header (rule 2);
- every decoded item encodes back to a frame that decodes to the same item.

Flag bits of the first byte (fuzz/harness.py rule 2): 0x08 a small frame limit and
0x10 a small depth limit, so short inputs reach both checks.

Run: ``python fuzz/fuzz_frames.py -max_total_time=60 fuzz/corpus/frames``.
"""

from __future__ import annotations

from typing import Final

import cbor2
from harness import fuzz_main, raises_again, split

from kv_protocol.errors import RemoteProtocolError
from kv_protocol.framing import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FRAME_SIZE,
    HEADER_SIZE,
    FrameDecoder,
    encode_frame,
)

# Small enough that a few mutated bytes cross them; the defaults are 64 MiB and 64.
SMALL_FRAME_BYTES: Final = 256
SMALL_DEPTH: Final = 4
FLAG_SMALL_FRAMES: Final = 0x08
FLAG_SMALL_DEPTH: Final = 0x10


def _canonical(items: list[object]) -> bytes:
    """Items as bytes, so that 1, 1.0 and True differ and NaN equals itself."""
    return cbor2.dumps(items)


def decode_chunks(decoder: FrameDecoder, chunks: list[bytes]) -> tuple[list[object], bool]:
    """Every item the chunks give, and whether the decoder failed; checks rules 2 and 4."""
    items: list[object] = []
    for chunk in chunks:
        try:
            items += decoder.feed(chunk)
        except RemoteProtocolError as exc:
            error = exc
            break
        assert decoder.buffered < HEADER_SIZE + decoder.max_frame_size, decoder.buffered
    else:
        return items, False
    assert raises_again(lambda: decoder.feed(b"\x00"), error), "a broken decoder decoded again"
    return items, True


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris's name)
    flags, chunks = split(data)
    size = SMALL_FRAME_BYTES if flags & FLAG_SMALL_FRAMES else DEFAULT_MAX_FRAME_SIZE
    depth = SMALL_DEPTH if flags & FLAG_SMALL_DEPTH else DEFAULT_MAX_DEPTH
    chunked, chunked_failed = decode_chunks(FrameDecoder(size, depth), chunks)
    whole, whole_failed = decode_chunks(FrameDecoder(size, depth), [b"".join(chunks)])
    assert chunked_failed == whole_failed, "the chunking changed whether the bytes decode"
    if not whole_failed:
        assert _canonical(chunked) == _canonical(whole), "the chunking changed the items"
    for item in chunked:
        [again] = FrameDecoder(DEFAULT_MAX_FRAME_SIZE, depth).feed(encode_frame(item))
        assert _canonical([again]) == _canonical([item]), "an item did not survive a round trip"


if __name__ == "__main__":
    fuzz_main(TestOneInput)
