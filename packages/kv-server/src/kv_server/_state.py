"""The running server's state: configuration, keyspace, sessions, counters."""

from __future__ import annotations

import secrets
import time
from typing import TYPE_CHECKING

import trio

from kv_protocol.handshake import Credentials, derive_key

from ._auth_throttle import AuthThrottle
from ._blocking import Blocking
from ._config import MaxmemoryPolicy, ServerConfig
from ._dispatch import Dispatcher
from ._keyspace import CommandClock, Keyspace, LruKeyspace
from ._memory import MaxMemory
from ._pubsub import PubSub
from ._scan import Cursors
from ._session import Session, Sessions
from ._stats import Stats
from ._version import __version__

if TYPE_CHECKING:
    from ._persistence import Persistence


class ServerState:
    """Everything a command may consult besides its own connection."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        # Derived once per start; the password text itself is not kept here.
        self.credentials = creds = Credentials.from_password(config.password, config.auth_iterations)
        self.readonly_key: bytes | None = None
        """The key of the read-only password, with the same salt and iterations, or None."""
        if config.readonly_password is not None:
            self.readonly_key = derive_key(config.readonly_password, creds.salt, creds.iterations)
        self.auth_throttle = AuthThrottle(clock=_handshake_clock)
        """Failed handshakes per peer, and the delay they earn (``_auth_throttle.py``)."""
        self.clock = CommandClock()
        lru = config.maxmemory_policy is MaxmemoryPolicy.ALLKEYS_LRU and config.maxmemory > 0
        self.keyspace = (LruKeyspace if lru else Keyspace)(self.clock)
        self.maxmemory: MaxMemory | None = None
        """``--maxmemory`` and its policy, or None without a limit (``_memory.py``)."""
        if config.maxmemory:
            self.maxmemory = MaxMemory(config.maxmemory, config.maxmemory_policy, self.keyspace)
        self.blocking = Blocking(self.keyspace)
        """Connections blocked on lists, and the keys they wait for (``_blocking.py``)."""
        self.pubsub = PubSub()
        self.cursors = Cursors()
        """Open SCAN cursors, shared by all connections as Redis's are."""
        self.stats = Stats()
        self.sessions = Sessions()
        self.dispatcher = Dispatcher(self.stats, self.blocking, config.max_frame_bytes,
                                     self.clock.tick, max_arguments=config.max_arguments,
                                     output_limit=config.client_output_limit,
                                     maxmemory=self.maxmemory)
        self.persistence: Persistence | None = None
        """The data directory's files; None until ``serve`` opens them (and in unit tests)."""
        self.server_name = f"kv-server {__version__}"
        self.run_id = secrets.token_hex(20)
        self.started_monotonic = time.monotonic()
        self.addresses: list[str] = []
        """Where the server listens, as ``tcp HOST:PORT``, ``tls HOST:PORT`` or ``unix PATH``."""
        self.tcp_port = 0
        """The bound plain TCP port (0 when none): with ``--port 0``, the one chosen."""
        self.tls_port = 0
        """The bound TLS port, or 0 without TLS."""
        self.shutting_down = False
        self._shutdown = trio.Event()

    def request_shutdown(self) -> None:
        """Start a graceful shutdown (what SIGINT and SIGTERM do)."""
        self._shutdown.set()

    async def wait_for_shutdown_request(self) -> None:
        await self._shutdown.wait()

    def close_sessions(self) -> None:
        """Ask every connection to close; idle ones at once, busy ones after their batch."""
        self.shutting_down = True
        for session in self.sessions:
            session.close_soon("server is shutting down", interrupt=session.idle)

    def close_idle(self, now: float) -> int:
        """Close connections idle longer than ``--timeout`` (not subscribers or blocked
        clients, as Redis exempts them); how many."""
        timeout, closed = self.config.idle_timeout_s, 0
        for session in self.sessions:
            if (session.idle and now - session.last_active > timeout and session.blocked is None
                    and not (session.pubsub and session.pubsub.count)):
                session.close_soon(f"idle for more than {timeout:g} s", interrupt=True)
                closed += 1
        self.stats.idle_disconnects += closed
        return closed

    def release(self, session: Session) -> None:
        """Forget a connection that ended: its subscriptions, watches and wait."""
        self.sessions.remove(session)
        self.pubsub.drop(session)
        if session.watch is not None:
            session.watch.release()
            session.watch = None
        if session.blocked is not None:
            self.blocking.release(session.blocked)
            session.blocked = None


def _handshake_clock() -> float:
    """trio's clock, which the handshake's waits run on (and tests mock); outside a
    run (a command called directly, as tests do for INFO), the monotonic clock."""
    try:
        return trio.current_time()
    except RuntimeError:
        return time.monotonic()
