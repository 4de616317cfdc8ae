"""Test helpers shared by every package's tests: value strategies and a connection pair.

On the pytest ``pythonpath`` (root pyproject.toml), so other packages' tests import it.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from kv_protocol.connection import ClientConnection, ServerConnection
from kv_protocol.handshake import MIN_PBKDF2_ITERATIONS, Credentials

PASSWORD = "correct horse battery staple"
# The minimum iteration count keeps handshake tests fast; the default is tested once.
TEST_CREDENTIALS = Credentials.from_password(PASSWORD, MIN_PBKDF2_ITERATIONS)

map_keys = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.binary(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(map_keys, inner, max_size=4),
    max_leaves=12,
)
keys = st.text(max_size=12) | st.binary(max_size=12)


def same(a: object, b: object) -> bool:
    """Equality that also tells True from 1 and 1.0 from 1, and treats NaN as itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))  # type: ignore[arg-type]
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


class ConnectionPair:
    """A client and a server connection wired together in memory (h11's helper)."""

    def __init__(self, password: str = PASSWORD, credentials: Credentials = TEST_CREDENTIALS) -> None:
        self.client = ClientConnection(password, name="test", hostname="testhost")
        self.server = ServerConnection(credentials, connection_id=7, server_name="kv-server test")

    def to_server(self) -> list[object]:
        return self.server.receive_data(self.client.data_to_send())

    def to_client(self) -> list[object]:
        return self.client.receive_data(self.server.data_to_send())

    def handshake(self) -> None:
        assert self.to_server() == []  # hello -> challenge queued
        assert self.to_client() == []  # challenge -> proof queued
        assert self.to_server() == []  # proof -> welcome queued
        assert self.to_client() == []  # welcome
