"""What every harness in fuzz/ shares: input layout, the crash rule and the atheris entry.

Rules of the harnesses (each ``fuzz_<target>.py`` follows them):

1. ``TestOneInput(data: bytes) -> None`` is the whole harness. It catches only the
   exceptions its target documents (``ProtocolError`` subclasses, ``ServerError``
   replies, ``AofFormatError``, ``SnapshotFormatError``) and checks the invariants
   the target promises after them; anything that escapes is a crash. The function
   needs no atheris, so CI runs it over the seed corpus and hypothesis-made inputs
   (tests-integration/test_fuzz_smoke.py) without installing atheris.
2. One input is cut into chunks by :func:`split`: its first byte says how many cut
   points follow (0 to 7) and those bytes say where, so the fuzzer mutates the
   chunking as it mutates the bytes. Decoders must give the same answer however
   the bytes arrive (one ``receive_some`` can end anywhere).
3. Every loop over an input is bounded by the input's length or a named constant;
   memory per input is bounded by atheris's ``-rss_limit_mb`` and time by
   ``-timeout`` (see fuzz/run.py, which ``nox -s fuzz`` runs).
4. ``python fuzz/fuzz_<target>.py [libFuzzer flags] [corpus dirs]`` runs one harness
   under atheris; :func:`fuzz_main` instruments every module already imported
   (kv_protocol, kv_server, cbor2's pure-Python parts) before fuzzing starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

FUZZ_DIR: Final = Path(__file__).resolve().parent
CORPUS_DIR: Final = FUZZ_DIR / "corpus"
CRASHES_DIR: Final = FUZZ_DIR / "crashes"
# Seven cut points give eight chunks: enough to split a header, a body and the
# next header apart, few enough that the cut bytes stay a small part of an input.
MAX_CUTS: Final = 7


def split(data: bytes) -> tuple[int, list[bytes]]:
    """``(flags, chunks)`` of an input laid out as rule 2 says.

    ``flags`` is the first byte (its low 3 bits are the number of cut points; a
    harness may use the other bits to choose a mode); each cut byte is the length
    of the next chunk, and the rest of the input is the last chunk. Chunks may be
    empty; concatenated they are the payload.
    """
    if not data:
        return 0, [b""]
    flags = data[0]
    cuts = data[1 : 1 + (flags & MAX_CUTS)]
    payload = data[1 + len(cuts) :]
    chunks: list[bytes] = []
    at = 0
    for size in cuts:
        chunks.append(payload[at : at + size])
        at = min(at + size, len(payload))
    chunks.append(payload[at:])
    return flags, chunks


def join(flags: int, chunks: list[bytes]) -> bytes:
    """The input that :func:`split` turns into ``chunks`` (the last chunk is the rest).

    Cut lengths above 255 cannot be said in one byte: such a chunk is cut at 255.
    """
    head = list(chunks[:-1])[:MAX_CUTS]
    tail = b"".join(chunks[len(head) :])
    sizes = [min(len(chunk), 255) for chunk in head]
    payload = b"".join(head) + tail
    return bytes([(flags & ~MAX_CUTS & 0xFF) | len(sizes), *sizes]) + payload


def raises_again(call: Callable[[], object], first: Exception) -> bool:
    """Whether ``call()`` raises ``first`` again: a decoder or reader that failed stays failed.

    The same object, or one of its type with the same message (an error that the
    reader does not keep, such as EmptyAofError, is raised anew but equal).
    """
    try:
        call()
    except Exception as again:  # anything else than ``first`` is the finding
        return again is first or (type(again) is type(first) and str(again) == str(first))
    return False


def fuzz_main(test_one_input: Callable[[bytes], None]) -> None:
    """Run ``test_one_input`` under atheris with this process's command line (rule 4)."""
    import atheris  # only the coverage-guided run needs it; CI's smoke test does not

    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
