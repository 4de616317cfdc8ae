"""atheris harness: ``ServerConnection`` and ``ClientConnection`` fed arbitrary bytes.

Each input picks a side and how far a valid transcript goes before the fuzzed bytes
take over (flag bits 0x38 of the first byte, fuzz/harness.py rule 2). "During"
modes put the fuzzed bytes in the same read as the last valid message, which is
the path that hands trailing bytes to the frame decoder (connection.py rule 4).

What the connection module promises, checked after every read:

- only ``RemoteProtocolError`` or a ``ServerError`` escapes (rule 5), and then the
  connection is in ERROR; an empty read (EOF) closes it;
- nothing comes out of ``receive_data`` before READY, and READY is reached only
  by an input that holds the valid proof (the fuzzer cannot forge an HMAC; with the
  fixed nonces below the valid proof is a constant the seed corpus holds);
- whatever a side queues to send is well-formed frames;
- once READY the decoder takes frames of the full size, not the handshake's 4 KiB.

Run: ``python fuzz/fuzz_handshake.py -max_total_time=60 fuzz/corpus/handshake``.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from typing import Final

from harness import fuzz_main, split

import kv_protocol.connection as connection_module
from kv_protocol.connection import ClientConnection, ServerConnection, State
from kv_protocol.errors import RemoteProtocolError, ServerError
from kv_protocol.framing import FrameDecoder
from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS, Credentials

PASSWORD: Final = "fuzz password"
# Fixed salt and nonces: the transcript, and so the valid proofs, are constants, and
# an input replays the same way every time (libFuzzer needs that to minimise).
SALT: Final = bytes(range(16))
CLIENT_NONCE: Final = b"c" * 16
SERVER_NONCE: Final = b"s" * 16
CREDENTIALS: Final = Credentials.from_password(PASSWORD, MIN_PBKDF2_ITERATIONS, SALT)


class Mode(enum.IntEnum):
    SERVER_FRESH = 0
    SERVER_DURING_HELLO = 1  # the hello and fuzzed bytes in one read
    SERVER_DURING_PROOF = 2  # hello, then the proof and fuzzed bytes in one read
    SERVER_READY = 3
    CLIENT_FRESH = 4
    CLIENT_DURING_CHALLENGE = 5
    CLIENT_DURING_WELCOME = 6
    CLIENT_READY = 7


def new_server() -> ServerConnection:
    return ServerConnection(CREDENTIALS, connection_id=1, server_name="kv-server fuzz", nonce=SERVER_NONCE)


def new_client() -> ClientConnection:
    return ClientConnection(PASSWORD, name="fuzz", client_id="F0", hostname="fuzzhost", nonce=CLIENT_NONCE)


def _transcript() -> tuple[bytes, bytes, bytes, bytes]:
    """(hello, challenge, proof, welcome) frames of a valid handshake."""
    client, server = new_client(), new_server()
    hello = client.data_to_send()
    server.receive_data(hello)
    challenge = server.data_to_send()
    client.receive_data(challenge)
    proof = client.data_to_send()
    server.receive_data(proof)
    welcome = server.data_to_send()
    client.receive_data(welcome)
    assert client.state is State.READY and server.state is State.READY
    return hello, challenge, proof, welcome


HELLO, CHALLENGE, PROOF, WELCOME = _transcript()
# The proofs themselves: READY without them in the input would be a forged handshake.
CLIENT_PROOF: Final = PROOF[-32:]
SERVER_PROOF: Final = WELCOME[-32:]


@contextlib.contextmanager
def bounded_key_derivation() -> Iterator[None]:
    """Clients derive K with at most the transcript's iteration count, for one input.

    A fake server may ask for up to MAX_PBKDF2_ITERATIONS (ten million: seconds of
    CPU, bounded by design), which would make each such input a timeout rather than
    a finding. The fuzzed proof cannot verify with either key, so the logic under
    test is the same. Restored afterwards: tests run this in their own process.
    """
    real = connection_module._cached_key

    def bounded(password: str, salt: bytes, iterations: int) -> bytes:
        return real(password, salt, min(iterations, MIN_PBKDF2_ITERATIONS))

    connection_module._cached_key = bounded  # type: ignore[assignment]
    try:
        yield
    finally:
        connection_module._cached_key = real


def _check_outgoing(conn: ServerConnection | ClientConnection) -> None:
    decoder = FrameDecoder()
    decoder.feed(conn.data_to_send())  # a RemoteProtocolError here escapes: a crash
    assert decoder.buffered == 0, "queued bytes end inside a frame"


def feed(conn: ServerConnection | ClientConnection, chunks: list[bytes], proof: bytes, fed: bytes) -> None:
    """Feed ``chunks`` to ``conn`` and check the module's promises after each read.

    ``fed`` is what the valid transcript already fed; READY needs ``proof`` in it or
    in the chunks.
    """
    for chunk in chunks:
        was_ready = conn.state is State.READY
        fed += chunk
        try:
            items = conn.receive_data(chunk)
        except (RemoteProtocolError, ServerError):
            assert conn.state is State.ERROR, conn.state
            return
        if not chunk:
            assert conn.state is State.CLOSED, conn.state
            return
        if conn.state is State.READY:
            assert proof in fed, "READY without the valid proof in the input"
            assert conn.decoder.max_frame_size == conn.max_frame_size
        else:
            assert conn.state is State.HANDSHAKE and not items and not was_ready, conn.state
        _check_outgoing(conn)


def _run(conn: ServerConnection | ClientConnection, steps: list[bytes], during: bytes,
         chunks: list[bytes], proof: bytes) -> None:
    """Feed the valid ``steps`` one read each, then ``during`` and the fuzzed chunks."""
    for step in steps:
        conn.receive_data(step)
    conn.data_to_send()
    feed(conn, [during + chunks[0], *chunks[1:]], proof, b"".join(steps))


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris's name)
    flags, chunks = split(data)
    mode = Mode((flags >> 3) & 7)
    with bounded_key_derivation():
        if mode == Mode.SERVER_FRESH:
            _run(new_server(), [], b"", chunks, CLIENT_PROOF)
        elif mode == Mode.SERVER_DURING_HELLO:
            _run(new_server(), [], HELLO, chunks, CLIENT_PROOF)
        elif mode == Mode.SERVER_DURING_PROOF:
            _run(new_server(), [HELLO], PROOF, chunks, CLIENT_PROOF)
        elif mode == Mode.SERVER_READY:
            _run(new_server(), [HELLO, PROOF], b"", chunks, CLIENT_PROOF)
        elif mode == Mode.CLIENT_FRESH:
            _run(new_client(), [], b"", chunks, SERVER_PROOF)
        elif mode == Mode.CLIENT_DURING_CHALLENGE:
            _run(new_client(), [], CHALLENGE, chunks, SERVER_PROOF)
        elif mode == Mode.CLIENT_DURING_WELCOME:
            _run(new_client(), [CHALLENGE], WELCOME, chunks, SERVER_PROOF)
        else:
            _run(new_client(), [CHALLENGE, WELCOME], b"", chunks, SERVER_PROOF)


if __name__ == "__main__":
    fuzz_main(TestOneInput)
