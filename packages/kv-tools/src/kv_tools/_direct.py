"""One kv connection driven by hand, for the measurements that time single round trips.

The expiry and persistence figures time PING round trips while the server does
something else, so they send frames themselves and decode replies without the
client's layers (nothing between the socket and the clock but a frame decoder),
and they pipeline their loading the same way.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Final

from kv_client import ClientConfig
from kv_client._sync import SyncConnection
from kv_protocol.framing import FrameDecoder, encode_frame

RECEIVE_BYTES: Final = 1 << 20  # replies of a whole loading batch in few recv calls
DEFAULT_TIMEOUT_S: Final = 60.0  # no single reply the measurements wait for takes longer


class DirectConnection:
    """A blocking, authenticated socket: send command arrays, read ``[0, value]`` replies.

    Error handling: an error reply raises RuntimeError naming it; a closed
    connection raises ConnectionError; a reply later than ``timeout_s`` raises
    TimeoutError (the socket's own), so every wait is bounded.
    """

    def __init__(self, host: str, port: int, password: str, *, name: str = "kv-bench",
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        config = ClientConfig(password, host=host, port=port, name=name, timeout_s=timeout_s)
        self.sock: socket.socket = SyncConnection(config).sock
        self.decoder = FrameDecoder()
        self.pending: list[object] = []

    def send(self, *commands: Sequence[object]) -> None:
        self.sock.sendall(b"".join(encode_frame(c) for c in commands))

    def replies(self, count: int) -> list[object]:
        while len(self.pending) < count:
            data = self.sock.recv(RECEIVE_BYTES)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.pending += self.decoder.feed(data)
        taken, self.pending = self.pending[:count], self.pending[count:]
        for reply in taken:
            if not (isinstance(reply, list) and reply and reply[0] == 0):
                raise RuntimeError(f"error reply: {reply!r}")
        return [reply[1] for reply in taken]  # type: ignore[index]

    def call(self, *argv: object) -> object:
        self.send(list(argv))
        return self.replies(1)[0]

    def info(self, section: str) -> dict[str, object]:
        """One INFO section as its map, e.g. ``info("persistence")["bgsave_in_progress"]``."""
        reply = self.call("INFO", section)
        if not isinstance(reply, dict) or not isinstance(reply.get(section), dict):
            raise RuntimeError(f"INFO {section} answered {reply!r}")
        return reply[section]  # type: ignore[no-any-return]

    def close(self) -> None:
        self.sock.close()


def figure(info: dict[str, object], name: str) -> float:
    """A number from an INFO map, or RuntimeError naming the field the server lacks."""
    value = info.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuntimeError(f"INFO has no number {name!r} (got {value!r})")
    return value
