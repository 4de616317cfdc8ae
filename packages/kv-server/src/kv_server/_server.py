"""The server as a trio task tree, and its staged shutdown.

``serve(config)`` loads the data directory (``_persistence.py``), opens the
listeners (TCP on each bind address, optionally a Unix socket, and TLS on each bind
address when given a certificate: see ``_tls.py``), serves connections in their own
nursery and reports the running :class:`ServerState` through ``task_status`` once
it accepts connections, so tests can run servers on port 0 without sleeping.

Shutdown in stages (after hypercorn): a shutdown request (SIGINT/SIGTERM when
``handle_signals``) stops the listeners, so no new connection is accepted; every
connection is asked to close after its current batch (idle ones at once); the
connection nursery gets ``shutdown_grace_s`` before it is cancelled; then the AOF
flusher stops and, shielded, the AOF is flushed and fsynced, a running BGSAVE is
abandoned and the Unix socket file is removed.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import resource
import signal
import socket
import ssl
import time
from pathlib import Path

import trio

from ._config import ServerConfig
from ._connection import SocketTransport, StreamTransport, serve_connection
from ._expiry import expire_forever
from ._persistence import Persistence
from ._state import ServerState
from ._tls import server_context

log = logging.getLogger("kv_server")

# Connections the kernel may queue before accept(); Redis's tcp-backlog default.
LISTEN_BACKLOG = 511
TlsListener = trio.SSLListener[trio.SocketStream]


async def serve(
    config: ServerConfig,
    *,
    handle_signals: bool = False,
    task_status: trio.TaskStatus[ServerState] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a kv server until a shutdown is requested, then shut down in stages.

    Error handling:
        A damaged data directory raises ``StartupError``; one locked by another
        server, or failing to open a listener (address in use, permission), raises
        ``OSError``; unusable TLS files raise ``ValueError`` naming the file; all
        before ``task_status.started``, with nothing left open.
    """
    tls = server_context(config)
    state = ServerState(config)
    raise_open_files_limit(config.maxclients)
    persistence = state.persistence = Persistence.open(state)
    try:
        listeners, tls_listeners = await _open_listeners(config, state, tls)
    except BaseException:
        persistence.close()
        raise
    try:
        async with trio.open_nursery() as background:
            background.start_soon(persistence.run)
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as front:
                    if listeners:  # none with --no-tcp, TLS and no --unix
                        await front.start(functools.partial(
                            trio.serve_listeners, functools.partial(_accept, state), listeners,
                            handler_nursery=connections))
                    if tls_listeners:
                        await front.start(functools.partial(
                            trio.serve_listeners, functools.partial(_accept_tls, state),
                            tls_listeners, handler_nursery=connections))
                    if handle_signals:
                        front.start_soon(_watch_signals, state)
                    front.start_soon(expire_forever, state.keyspace, state.clock.tick)
                    if config.idle_timeout_s:
                        front.start_soon(_close_idle_forever, state)
                    task_status.started(state)
                    await state.wait_for_shutdown_request()
                    log.info("shutting down: no longer accepting connections")
                    front.cancel_scope.cancel()
                state.close_sessions()
                connections.cancel_scope.deadline = trio.current_time() + config.shutdown_grace_s
            background.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            persistence.close()
            if config.unix_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    config.unix_path.unlink()
    log.info("shutdown complete")


async def _close_idle_forever(state: ServerState) -> None:
    """Apply ``--timeout`` (checked a few times per timeout, at most once a second)."""
    period = min(1.0, state.config.idle_timeout_s / 4)
    while True:
        await trio.sleep(period)
        if closed := state.close_idle(time.monotonic()):
            log.info("closed %d idle connection(s)", closed)


def raise_open_files_limit(maxclients: int) -> None:
    """Let the process hold maxclients connections, as Redis does: raise the soft limit
    on open files towards the hard one, and warn when even that is too low."""
    wanted = maxclients + 64  # listeners, data files, the AOF's duplicate descriptor
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < wanted:
        log.warning("open files are limited to %d: fewer than --maxclients %d connections fit "
                    "(raise it with ulimit -n)", soft, maxclients)


async def _watch_signals(state: ServerState) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.warning("received %s, shutting down gracefully", signal.Signals(signum).name)
            state.request_shutdown()
            return


async def _open_listeners(
    config: ServerConfig, state: ServerState, tls: ssl.SSLContext | None
) -> tuple[list[trio.SocketListener], list[TlsListener]]:
    """The plain listeners (TCP, Unix) and the TLS ones, in the order the ready line shows."""
    listeners: list[trio.SocketListener] = []
    tls_sockets: list[trio.SocketListener] = []
    try:
        if config.tcp:
            state.tcp_port = await _open_tcp(config.bind, config.port, "tcp", state, listeners)
        if tls is not None:
            state.tls_port = await _open_tcp(config.bind, config.tls_port, "tls", state, tls_sockets)
        if config.unix_path is not None:
            listeners.append(await _open_unix_listener(config.unix_path))
            state.addresses.append(f"unix {config.unix_path}")
    except BaseException:
        for listener in listeners + tls_sockets:
            await listener.aclose()
        raise
    if tls is None:
        return listeners, []
    return listeners, [trio.SSLListener(sock, tls, https_compatible=False) for sock in tls_sockets]


async def _open_tcp(bind: tuple[str, ...], port: int, kind: str, state: ServerState,
                    into: list[trio.SocketListener]) -> int:
    """Listen on ``port`` of every address in ``bind``; the port, once bound.

    Port 0 picks a free port on the first address, which the others then share.
    """
    for host in bind:
        opened = await trio.open_tcp_listeners(port, host=host, backlog=LISTEN_BACKLOG)
        into += opened
        for listener in opened:
            host_, port = listener.socket.getsockname()[:2]
            shown = f"[{host_}]" if ":" in host_ else host_
            state.addresses.append(f"{kind} {shown}:{port}")
    return port


async def _open_unix_listener(path: Path) -> trio.SocketListener:
    """A Unix socket listener whose file is mode 0600 from the start."""
    if path.is_socket():
        if await _socket_answers(path):
            raise OSError(errno.EADDRINUSE, f"another server is listening on {path}")
        path.unlink()  # left behind by a server that was killed
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window in which the file is group/world-accessible
    try:
        await sock.bind(str(path))
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old_umask)
    sock.listen(LISTEN_BACKLOG)
    return trio.SocketListener(sock)


async def _socket_answers(path: Path) -> bool:
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with probe:
        try:
            await probe.connect(str(path))
        except OSError:
            return False
    return True


def _address(sockaddr: object) -> str:
    if isinstance(sockaddr, tuple):
        host, port = sockaddr[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(sockaddr) or "unix"


def _peer(stream: trio.SocketStream) -> tuple[str, str] | None:
    """``(addr, laddr)`` of an accepted connection, or None if the peer is already gone."""
    tsock = stream.socket
    try:
        return _address(tsock.getpeername()), _address(tsock.getsockname())
    except OSError:
        return None


async def _accept(state: ServerState, stream: trio.SocketStream) -> None:
    tsock = stream.socket
    kind = "unix" if tsock.family == socket.AF_UNIX else "tcp"
    if (peer := _peer(stream)) is None:
        await stream.aclose()
        return
    raw = socket.socket(fileno=tsock.detach())
    await serve_connection(state, SocketTransport(raw), kind=kind, addr=peer[0], laddr=peer[1])


async def _accept_tls(state: ServerState, stream: trio.SSLStream[trio.SocketStream]) -> None:
    """Serve a TLS connection; its TLS handshake runs on its first read (see ``_tls.py``)."""
    if (peer := _peer(stream.transport_stream)) is None:
        await trio.aclose_forcefully(stream)
        return
    await serve_connection(state, StreamTransport(stream), kind="tls", addr=peer[0], laddr=peer[1])
