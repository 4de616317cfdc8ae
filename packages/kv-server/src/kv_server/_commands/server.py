"""Server commands: FLUSHALL and INFO.

INFO answers a map of sections, each a map of fields, rather than Redis's text
blob: clients get typed numbers without parsing. The fields keep Redis's names
where Redis has the same figure, so operators find what they know.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final

from kv_protocol.messages import OK
from kv_server._dispatch import command
from kv_server._memory import used_memory
from kv_server._session import Session
from kv_server._stats import process_memory
from kv_server._version import __version__

if TYPE_CHECKING:
    from kv_server._state import ServerState

_LIBRARIES: Final = {f"{name}_version": version(name) for name in ("trio", "cbor2")}


def _server(state: ServerState) -> dict[str, object]:
    uptime = int(time.monotonic() - state.started_monotonic)
    return {
        "kv_version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        **_LIBRARIES,
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "arch_bits": 64 if sys.maxsize > 2**32 else 32,
        "process_id": os.getpid(),
        "run_id": state.run_id,
        "tcp_port": state.tcp_port,
        "tls_port": state.tls_port,
        "listeners": list(state.addresses),
        "uptime_in_seconds": uptime,
        "uptime_in_days": uptime // 86400,
        "executable": sys.executable,
        "data_dir": str(state.config.data_dir.resolve()),
    }


def _clients(state: ServerState) -> dict[str, object]:
    sessions = list(state.sessions)
    return {"connected_clients": len(sessions),
            "readonly_clients": sum(session.readonly for session in sessions),
            "handshaking_clients": state.sessions.handshaking,
            "blocked_clients": sum(session.blocked is not None for session in sessions),
            "pubsub_clients": sum(bool(session.pubsub and session.pubsub.count)
                                  for session in sessions),
            "watching_clients": sum(session.watch is not None for session in sessions),
            "total_blocking_keys": len(state.blocking.queues),
            **_limits(state)}


def _limits(state: ServerState) -> dict[str, object]:
    config = state.config
    return {"maxclients": config.maxclients, "idle_timeout_s": config.idle_timeout_s,
            "max_frame_size": config.max_frame_bytes, "max_nesting": config.max_depth,
            "max_arguments": config.max_arguments,
            "client_output_limit": config.client_output_limit,
            "pubsub_buffer_limit": config.pubsub_buffer_limit}


def _memory(state: ServerState) -> dict[str, object]:
    rss, peak = process_memory()
    limits = state.maxmemory.info() if state.maxmemory else {
        "used_memory": used_memory(), "maxmemory": 0,
        "maxmemory_policy": state.config.maxmemory_policy.value, "evicted_keys": 0,
        "oom_rejections": 0}
    return {"used_memory_rss": rss, "used_memory_peak": peak, **limits}


def _stats(state: ServerState) -> dict[str, object]:
    stats, keyspace = state.stats, state.keyspace
    entries = state.dispatcher.entries.values()
    return {
        "total_connections_received": stats.connections_received,
        "total_commands_processed": sum(e.calls + e.failed for e in entries),
        "total_error_replies": sum(stats.error_replies.values()),
        "total_auth_failures": stats.auth_failures,
        "auth_throttled_peers": state.auth_throttle.tracked(),
        "total_handshake_timeouts": stats.handshake_timeouts,
        "total_protocol_errors": stats.protocol_errors,
        "keyspace_hits": keyspace.hits,
        "keyspace_misses": keyspace.misses,
        "expired_keys": keyspace.expired,
        "total_net_input_bytes": stats.net_input_bytes,
        "total_net_output_bytes": stats.net_output_bytes,
        "pubsub_channels": len(state.pubsub.channels),
        "pubsub_patterns": len(state.pubsub.patterns),
        "total_published_messages": state.pubsub.messages,
        "total_output_buffer_disconnects": stats.output_buffer_disconnects,
        "rejected_connections": stats.rejected_connections,
        "total_idle_disconnects": stats.idle_disconnects,
    }


def _keyspace(state: ServerState) -> dict[str, object]:
    return {"keys": len(state.keyspace), "expires": len(state.keyspace.expires),
            "scan_cursors": len(state.cursors)}


def _persistence(state: ServerState) -> dict[str, object]:
    persistence = state.persistence
    return {"enabled": 0} if persistence is None else {"enabled": 1, **persistence.info()}


def _commandstats(state: ServerState) -> dict[str, object]:
    return {
        name.lower(): {"calls": e.calls, "failed_calls": e.failed, "rejected_calls": e.rejected}
        for name, e in state.dispatcher.entries.items()
        if e.calls or e.failed or e.rejected
    }


def _errorstats(state: ServerState) -> dict[str, object]:
    return dict(sorted(state.stats.error_replies.items()))


SECTIONS: Final[dict[str, Callable[[ServerState], dict[str, object]]]] = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "stats": _stats,
    "keyspace": _keyspace,
    "commandstats": _commandstats,
    "errorstats": _errorstats,
}
# As in Redis, the default leaves out the per-command table.
_DEFAULT: Final = tuple(name for name in SECTIONS if name != "commandstats")
_GROUPS: Final = {"default": _DEFAULT, "all": tuple(SECTIONS), "everything": tuple(SECTIONS)}


@command("INFO")
def info(ctx: Session, argv: list[Any]) -> dict[str, dict[str, object]]:
    asked = [name.lower() for name in argv[1:]] or ["default"]
    wanted: set[str] = set()
    for name in asked:
        wanted.update(_GROUPS.get(name, (name,)))
    return {name: build(ctx.state) for name, build in SECTIONS.items() if name in wanted}


@command("FLUSHALL")
def flushall(ctx: Session, argv: list[Any]) -> str:
    ctx.keyspace.flush()
    return OK
