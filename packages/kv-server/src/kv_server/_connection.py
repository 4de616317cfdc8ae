"""One connection: the handshake, then read -> run every command -> one write.

Rules of this module:

1. The handshake runs under ``handshake_timeout_s``; until it succeeds only
   handshake messages are accepted (``kv_protocol.connection``). A peer with recent
   failed handshakes has its proof checked only after the delay they earned
   (``_auth_throttle.py``); the deadline moves by that delay.
2. After it, each turn reads what arrived, decodes every complete frame, runs each
   command and sends all the replies in one write, so pipelining costs one read
   and one write per batch. A batch that logged writes to the AOF first waits for
   its group to be written (write-ahead; see ``_aof.py``).
3. Plain TCP and Unix sockets use a low-level loop: a non-blocking socket whose
   ``recv``/``send`` are called directly, parking the task only on EAGAIN
   (``wait_readable``/``wait_writable``) and checkpointing once per batch. Going
   through trio's stream layer costs a scheduler trip per receive and per send,
   which ../shared/bench measured at a third of the server's time. Other streams
   (TLS, memory streams in tests) run the same steps over ``trio.abc.Stream``.
4. A malformed frame gets one PROTO error frame, then the connection closes. A
   peer that vanishes ends the loop quietly. The socket is always closed.
5. A session asked to close (CLIENT KILL, shutdown) receives a push
   ``[2, "kill", reason]`` after its last complete reply and is closed.
6. A bug in handling one connection is logged and closes that connection only.
7. A batch that ended on a blocking command, and a connection that subscribed, leave
   the fast loop for the waits of ``_batches.py``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Protocol

import trio

from kv_protocol.commands import ArgKind, resolve
from kv_protocol.connection import ServerConnection, State
from kv_protocol.errors import ProtoError, RemoteProtocolError, ServerError, WrongPassError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import encode_error, encode_push
from kv_protocol.values import describe, type_name

from ._auth_throttle import peer_of
from ._batches import QUIET, Batch, finish_batch, persisted, serve_subscriber
from ._session import PEER_GONE, PROTOCOL_ERROR, Session
from ._state import ServerState

log = logging.getLogger("kv_server")

# One read takes what a pipelining client sent in one go; 64 KiB holds hundreds of
# small commands and matches the kernel's default socket buffer scale.
RECEIVE_BYTES = 65536
# A goodbye frame (error or kill notice) to a peer that does not read is dropped
# after this long rather than holding the task.
GOODBYE_TIMEOUT_S = 1.0

_QUIET = QUIET
_MAXCLIENTS_FRAME = encode_error(ServerError("max number of clients reached"))


class Transport(Protocol):
    """What the connection needs from a socket or stream."""

    async def receive_some(self) -> bytes: ...

    async def send_all(self, data: bytes) -> None: ...

    async def serve_commands(self, session: Session, decoder: FrameDecoder, run: Batch) -> bool:
        """Read, run and answer batches until EOF (True), until the session must close
        or until it subscribed (False)."""

    def peer_closed(self) -> bool:
        """Whether the peer has certainly hung up, checked without blocking or reading."""

    async def refuse(self, frame: bytes) -> None:
        """Turn away a connection at maxclients: ``frame`` if it can go at once, then close."""

    async def aclose(self) -> None: ...


class SocketTransport:
    """A plain non-blocking socket driven directly (rule 3)."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock

    async def receive_some(self) -> bytes:
        while True:
            try:
                return self.sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.sock)

    async def send_all(self, data: bytes, sent: int = 0) -> None:
        view = memoryview(data)
        while sent < len(view):
            try:
                sent += self.sock.send(view[sent:])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.sock)

    async def serve_commands(self, session: Session, decoder: FrameDecoder, run: Batch) -> bool:
        sock, stats = self.sock, session.state.stats
        recv, send, feed = sock.recv, sock.send, decoder.feed
        wait_readable, checkpoint = trio.lowlevel.wait_readable, trio.lowlevel.checkpoint
        monotonic = time.monotonic
        while session.closing is None and session.pubsub is None:
            try:
                data = recv(RECEIVE_BYTES)
            except BlockingIOError:
                session.idle = True
                try:
                    await wait_readable(sock)
                finally:
                    session.idle = False
                continue
            if not data:
                return True
            stats.net_input_bytes += len(data)
            items = feed(data)
            out = run(session, items)
            if session.logged:
                out = await persisted(session, items, out)
            if out:
                stats.net_output_bytes += len(out)
                try:
                    sent = send(out)
                except BlockingIOError:
                    sent = 0
                if sent < len(out):
                    session.replying = True
                    await self.send_all(out, sent)
                    session.replying = False
            if (session.pending or session.blocked is not None) and session.pubsub is None:
                await finish_batch(session, self, decoder, run, self.send_all)
            session.last_active = monotonic()
            # One scheduler trip per batch: fairness and cancellation, and by the time
            # the task is back a pipelining peer's next request has usually arrived.
            await checkpoint()
        return False

    def peer_closed(self) -> bool:
        return _peer_closed(self.sock)

    async def refuse(self, frame: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(frame)
        await self.aclose()

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


class StreamTransport:
    """Any trio stream: TLS, or memory streams in tests."""

    __slots__ = ("stream",)

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def receive_some(self) -> bytes:
        return bytes(await self.stream.receive_some(RECEIVE_BYTES))

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def serve_commands(self, session: Session, decoder: FrameDecoder, run: Batch) -> bool:
        stats = session.state.stats
        while session.closing is None and session.pubsub is None:
            session.idle = True
            try:
                data = await self.stream.receive_some(RECEIVE_BYTES)
            finally:
                session.idle = False
            if not data:
                return True
            stats.net_input_bytes += len(data)
            items = decoder.feed(bytes(data))
            out = run(session, items)
            if session.logged:
                out = await persisted(session, items, out)
            if out:
                stats.net_output_bytes += len(out)
                session.replying = True
                await self.stream.send_all(out)
                session.replying = False
            if (session.pending or session.blocked is not None) and session.pubsub is None:
                await finish_batch(session, self, decoder, run, self.send_all)
            session.last_active = time.monotonic()
        return False

    def peer_closed(self) -> bool:
        """For TLS over TCP, a peek at the raw socket; it cannot see past a TLS goodbye
        still unread (the connection's own read then notices the end)."""
        stream = self.stream
        if not (isinstance(stream, trio.SSLStream)
                and isinstance(stream.transport_stream, trio.SocketStream)):
            return False
        raw = socket.socket(fileno=stream.transport_stream.socket.fileno())
        try:  # trio's socket methods are async: peek through a plain socket on its fd
            return _peer_closed(raw)
        finally:
            raw.detach()

    async def refuse(self, frame: bytes) -> None:
        """No message: it would first cost a TLS handshake for a client turned away."""
        await trio.aclose_forcefully(self.stream)

    async def aclose(self) -> None:
        """Close gracefully, so a TLS peer gets its close_notify and sees a clean end,
        not a truncation; a peer that does not read gets a forced close instead."""
        with trio.move_on_after(GOODBYE_TIMEOUT_S), contextlib.suppress(*_QUIET):
            await self.stream.aclose()


def _peer_closed(sock: socket.socket) -> bool:
    try:
        return not sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True


async def serve_connection(
    state: ServerState, transport: Transport, *, kind: str, addr: str, laddr: str
) -> None:
    """Serve one accepted connection until it ends; never raises for peer behaviour."""
    if len(state.sessions) + state.sessions.handshaking >= state.config.maxclients:
        state.stats.rejected_connections += 1
        if state.stats.rejected_connections % 1000 == 1:  # the first, then one in a thousand
            log.warning("connection from %s refused: maxclients (%d) reached (%d refused so "
                        "far)", addr, state.config.maxclients, state.stats.rejected_connections)
        with trio.CancelScope(shield=True):
            await transport.refuse(_MAXCLIENTS_FRAME)
        return
    state.stats.connections_received += 1
    connection_id = state.sessions.next_id()
    try:
        handshake = await _handshake(state, transport, connection_id, addr, peer_of(kind, addr))
        if handshake is not None:
            conn, pending = handshake
            await _serve_session(state, transport, conn, pending, kind=kind, addr=addr, laddr=laddr)
    except _QUIET:
        pass
    except Exception:  # a bug must cost this connection, not the server
        log.exception("connection %d: internal error; closing it", connection_id)
    finally:
        with trio.CancelScope(shield=True):
            await transport.aclose()


async def _handshake(
    state: ServerState, transport: Transport, connection_id: int, addr: str, peer: str
) -> tuple[ServerConnection, list[object]] | None:
    config, throttle = state.config, state.auth_throttle
    conn = ServerConnection(state.credentials, connection_id=connection_id,
                            server_name=state.server_name, readonly_key=state.readonly_key,
                            max_frame_size=config.max_frame_bytes, max_depth=config.max_depth)
    state.sessions.handshaking += 1
    waited = False
    try:
        with trio.move_on_after(config.handshake_timeout_s) as deadline:
            try:
                while True:
                    data = await transport.receive_some()
                    if data and conn.hello is not None and not waited:  # the proof arrives
                        waited = True
                        delay = throttle.admit(peer)
                        if delay is None:
                            log.info("connection %d from %s: refused unchecked: too many "
                                     "proofs from %s waiting", connection_id, addr, peer)
                            await _goodbye(transport, encode_error(ProtoError(
                                "too many failed handshakes from this address: try again later")))
                            return None
                        if delay:
                            log.info("connection %d from %s: proof held %.1f s after failed "
                                     "handshakes from %s", connection_id, addr, delay, peer)
                            deadline.deadline += delay
                            await trio.sleep(delay)
                    items = conn.receive_data(data)
                    if out := conn.data_to_send():
                        await transport.send_all(out)
                    if conn.state is State.READY:
                        if not conn.readonly:
                            throttle.succeeded(peer)
                        return conn, items
                    if conn.state is not State.HANDSHAKE:  # EOF
                        return None
            except RemoteProtocolError as exc:
                state.stats.protocol_errors += 1
                log.info("connection %d from %s: bad handshake: %s", connection_id, addr, exc)
                await _goodbye(transport, encode_error(ProtoError(str(exc))))
                return None
            except ServerError as exc:
                if isinstance(exc, WrongPassError):
                    state.stats.auth_failures += 1
                    throttle.failed(peer)
                log.info("connection %d from %s: refused: %s", connection_id, addr, exc)
                await _goodbye(transport, encode_error(exc))
                return None
        state.stats.handshake_timeouts += 1
        log.info("connection %d from %s: handshake timed out", connection_id, addr)
        message = f"handshake not completed within {config.handshake_timeout_s:g} s"
        await _goodbye(transport, encode_error(ProtoError(message)))
        return None
    finally:
        state.sessions.handshaking -= 1


async def _serve_session(
    state: ServerState, transport: Transport, conn: ServerConnection, pending: list[object],
    *, kind: str, addr: str, laddr: str,
) -> None:
    session = Session(state, conn.connection_id, transport=kind, addr=addr, laddr=laddr,
                      readonly=conn.readonly)
    session.peer_closed = transport.peer_closed
    if conn.hello is not None:  # always, once READY
        session.name, session.client_id, session.hostname = (
            conn.hello.name, conn.hello.client_id, conn.hello.hostname)
    run: Batch = state.dispatcher.execute_batch
    if state.config.verbose:
        run = _logged(run)
    log.info("client %d connected from %s (name %r%s)", session.id, addr, session.name,
             ", read-only" if session.readonly else "")
    state.sessions.add(session)
    if state.shutting_down:
        session.closing = "server is shutting down"
    try:
        with session.cancel_scope:
            if pending and session.closing is None:
                out = run(session, pending)
                if session.logged:
                    out = await persisted(session, pending, out)
                await transport.send_all(out)
                if (session.pending or session.blocked is not None) and session.pubsub is None:
                    await finish_batch(session, transport, conn.decoder, run, transport.send_all)
            while not await transport.serve_commands(session, conn.decoder, run):
                if session.closing is not None or await serve_subscriber(
                        session, transport, conn.decoder, run):
                    break
        # No notice after a reply cut short: it would land inside the half-sent frame.
        if session.closing not in (None, PROTOCOL_ERROR, PEER_GONE) and not session.replying:
            await _goodbye(transport, encode_push("kill", session.closing))
    except RemoteProtocolError as exc:
        await _goodbye(transport, state.dispatcher.protocol_error(session, exc))
    finally:
        state.release(session)
        log.info("client %d disconnected (%s)", session.id, session.closing or "closed by peer")


async def _goodbye(transport: Transport, frame: bytes) -> None:
    """Send a last frame if the peer takes it promptly; the connection closes anyway."""
    with trio.move_on_after(GOODBYE_TIMEOUT_S), contextlib.suppress(*_QUIET):
        await transport.send_all(frame)


def describe_command(argv: object) -> str:
    """A command for the log: name, keys and tokens, never values."""
    if type(argv) is not list or not argv:
        return f"<malformed {type_name(argv)}>"
    spec = resolve(argv)
    if spec is None:
        return f"{describe(argv[0])} (unknown, {len(argv) - 1} arguments)"
    parts = [spec.name]
    for index, arg in enumerate(argv[spec.words :]):
        argc = len(argv) - spec.words
        kind = spec.arg_at(index, argc).kind if spec.check_arity(argc) else None
        if kind in (ArgKind.KEY, ArgKind.TOKEN, ArgKind.INTEGER):
            parts.append(describe(arg))
        else:
            size = f" {len(arg)}" if isinstance(arg, str | bytes | list | dict) else ""
            parts.append(f"<{type_name(arg)}{size}>")
    return " ".join(parts)


def _logged(run: Batch) -> Batch:
    def run_and_log(session: Session, items: list[object]) -> bytes:
        for argv in items:
            log.info("client %d: %s", session.id, describe_command(argv))
        return run(session, items)

    return run_and_log
