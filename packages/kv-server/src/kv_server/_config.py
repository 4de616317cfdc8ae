"""Server configuration: one frozen dataclass, typed, with units in the names.

``_cli.py`` only parses flags into it; everything else reads it. Runtime counters
live elsewhere (``_stats.py``), so configuration never changes while serving.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from kv_protocol.framing import DEFAULT_MAX_DEPTH, DEFAULT_MAX_FRAME_SIZE
from kv_protocol.handshake import DEFAULT_PBKDF2_ITERATIONS, MAX_PBKDF2_ITERATIONS, MIN_PBKDF2_ITERATIONS

DEFAULT_PORT: Final = 6378  # the original system's port, one below Redis's
DEFAULT_BIND: Final = ("127.0.0.1",)
# Redis has no TLS port by default; 6380 is the one managed Redis services (Azure
# Cache for Redis) made familiar, and it sits beside our 6378 without taking 6379.
DEFAULT_TLS_PORT: Final = 6380
# A peer that has not finished the handshake in 10 s is not a client having a slow
# day: it holds a connection slot without having proved anything.
HANDSHAKE_TIMEOUT_S: Final = 10.0
# On SIGTERM, connections get this long to finish their current batch of commands.
SHUTDOWN_GRACE_S: Final = 5.0
# Redis's hard client-output-buffer-limit for pub/sub clients: a subscriber that lets
# this much pile up is not keeping up and is disconnected.
PUBSUB_BUFFER_LIMIT: Final = 32 * 1024 * 1024
# Redis's default maxclients.
MAX_CLIENTS: Final = 10_000
# Redis's proto-max-multibulk-len: a command of more arguments is refused.
MAX_ARGUMENTS: Final = 1024 * 1024
# Replies a batch accumulates before they are sent and the rest of it runs: what one
# connection's output can hold, whatever it pipelines (plus one reply, at most a frame).
CLIENT_OUTPUT_LIMIT: Final = 8 * 1024 * 1024


class FsyncPolicy(enum.StrEnum):
    """When the AOF is fsynced: after every group of writes, once a second, or never."""

    ALWAYS = "always"
    EVERYSEC = "everysec"
    NO = "no"


class MaxmemoryPolicy(enum.StrEnum):
    """What happens past ``--maxmemory`` to a command that may grow memory."""

    NOEVICTION = "noeviction"
    """Refuse it with OOM; reads and deletions keep working."""
    ALLKEYS_LRU = "allkeys-lru"
    """Evict the least recently used keys until under the limit."""
    VOLATILE_TTL = "volatile-ttl"
    """Evict keys with a time to live, nearest deadline first; OOM when none is left."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything kv-server is told at start-up."""

    password: str = field(repr=False)
    readonly_password: str | None = field(default=None, repr=False)
    """A second password whose connections may only read (``--readonly-pass``); None: none."""
    bind: tuple[str, ...] = DEFAULT_BIND
    """Addresses of the TCP listeners: plain ones (unless ``tcp`` is off) and TLS ones."""
    port: int = DEFAULT_PORT
    tcp: bool = True
    """Serve plain TCP on ``bind`` (``--no-tcp`` turns this off, not TLS)."""
    unix_path: Path | None = None
    data_dir: Path = Path("data")
    verbose: bool = False
    auth_iterations: int = DEFAULT_PBKDF2_ITERATIONS
    handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    shutdown_grace_s: float = SHUTDOWN_GRACE_S
    max_frame_bytes: int = DEFAULT_MAX_FRAME_SIZE
    max_depth: int = DEFAULT_MAX_DEPTH
    appendfsync: FsyncPolicy = FsyncPolicy.EVERYSEC
    persist_s: float | None = None
    """Seconds between background saves (``--persist``), or None for none."""
    binary: bool = False
    """Write snapshots in the binary format (``--binary``)."""
    aof_load_truncated: bool = False
    """Start even if the AOF's last record is torn, dropping it."""
    tls_cert: Path | None = None
    """PEM certificate (chain) for the TLS listeners; TLS is off without it."""
    tls_key: Path | None = None
    tls_ca: Path | None = None
    """When given, TLS clients must present a certificate signed by this CA."""
    tls_port: int = DEFAULT_TLS_PORT
    pubsub_buffer_limit: int = PUBSUB_BUFFER_LIMIT
    """Bytes that may wait for a subscriber (messages and replies) before it is disconnected."""
    maxclients: int = MAX_CLIENTS
    """Connections served at once (handshaking included); more are refused and closed."""
    max_arguments: int = MAX_ARGUMENTS
    """Elements a command array may have, its name included."""
    client_output_limit: int = CLIENT_OUTPUT_LIMIT
    """Reply bytes a batch holds before they are sent and the rest of the batch runs."""
    idle_timeout_s: float = 0.0
    """Close a connection idle this long (not subscribed, not blocked); 0: never."""
    maxmemory: int = 0
    """Bytes of estimated used memory past which ``maxmemory_policy`` applies; 0: no limit."""
    maxmemory_policy: MaxmemoryPolicy = MaxmemoryPolicy.NOEVICTION

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def __post_init__(self) -> None:
        if not self.password:
            raise ValueError("the password must not be empty")
        if self.readonly_password is not None and self.readonly_password in ("", self.password):
            raise ValueError("the read-only password must be set and differ from the password")
        for port in (self.port, self.tls_port):
            if not 0 <= port <= 65535:
                raise ValueError(f"port {port} is outside 0..65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither")
        if self.tls_ca is not None and not self.tls:
            raise ValueError("--tls-ca needs --tls-cert and --tls-key")
        if not (self.bind and (self.tcp or self.tls)) and self.unix_path is None:
            raise ValueError("nothing to listen on: give --bind, --unix or --tls-cert")
        if not MIN_PBKDF2_ITERATIONS <= self.auth_iterations <= MAX_PBKDF2_ITERATIONS:
            raise ValueError(
                f"auth iterations must be within {MIN_PBKDF2_ITERATIONS}..{MAX_PBKDF2_ITERATIONS}"
            )
        for name in ("handshake_timeout_s", "shutdown_grace_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.persist_s is not None and self.persist_s <= 0:
            raise ValueError("--persist must be a positive number of seconds")
        if self.pubsub_buffer_limit < 1024 or self.client_output_limit < 1024:
            raise ValueError("output limits must be at least 1024 bytes")
        if self.maxclients < 1 or self.max_arguments < 16:
            raise ValueError("maxclients must be at least 1 and max arguments at least 16")
        if self.maxmemory < 0:
            raise ValueError("maxmemory must be 0 (no limit) or a number of bytes")
        if self.idle_timeout_s < 0:
            raise ValueError("the idle timeout must be 0 (never) or a positive number of seconds")
        if self.max_frame_bytes < 1024 or self.max_depth < 2:
            raise ValueError("max frame size must be at least 1024 bytes and max depth at least 2")
