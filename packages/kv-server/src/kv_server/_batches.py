"""What a connection does around a batch besides answering it: waiting for the batch's
AOF group, waiting out a blocked command, and serving a subscriber.

Rules of this module:

1. A batch that logged writes is answered once its AOF group is written; if the
   group failed, the replies of the commands that logged become MISCONF.
2. A batch that ended on a blocking command sends its replies, then waits for the
   command's answer (``_blocking.py``: serving cancels the wait's scope) or its
   timeout (a null reply). Meanwhile the same task keeps reading: commands the
   client pipelined after the blocking one are kept in ``session.pending`` (up to
   ``PENDING_LIMIT_BYTES``, then it stops reading) and run once it is answered; the
   end of the stream means the client hung up, and its waiter is dropped before
   anyone can serve it an element it would never read.
3. A session asked to close while blocked (CLIENT KILL, shutdown) gives up its wait at
   once (``Session.close_soon`` releases the waiter), so no element is served to it.
4. From its first SUBSCRIBE a connection runs :func:`serve_subscriber`: a writer task
   sends its outbox (pushes and replies, in order; ``_pubsub.py``) while the reader
   runs commands. Once it has no subscriptions and its outbox is drained, it returns
   to the connection's fast loop.
6. A batch whose replies passed ``--client-output-limit`` sends them before the rest
   of it runs: a client pipelining reads of big values holds one chunk of output
   in the server, not all of it.
7. Exceptions never leave a nursery here: a peer that vanishes ends the connection
   quietly, and a malformed frame is raised after the nursery, as a plain exception,
   so the connection answers it with PROTO as it would anywhere else.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from kv_protocol.errors import MisconfError, RemoteProtocolError
from kv_protocol.framing import FrameDecoder
from kv_protocol.messages import encode_error, encode_reply

from ._session import PEER_GONE, Session

if TYPE_CHECKING:
    from ._blocking import Waiter
    from ._connection import Transport
    from ._pubsub import Outbox

Batch = Callable[[Session, list[object]], bytes]
Send = Callable[[bytes], Awaitable[None]]
QUIET = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
# Commands a client pipelines behind a blocking one are read up to this much, then
# TCP's flow control holds the rest: enough for any sane pipeline, bounded for a hostile one.
PENDING_LIMIT_BYTES = 1024 * 1024
_NULL_REPLY = encode_reply(None)


async def persisted(session: Session, items: list[object], out: bytes) -> bytes:
    """``out`` once the batch's AOF records are written, or with MISCONF for its writes."""
    logged, session.logged = session.logged, []
    dispatcher = session.state.dispatcher
    assert dispatcher.aof is not None  # only a logged write fills ``logged``
    group = dispatcher.aof.group
    await group.done.wait()
    replies, session.replies = session.replies, []
    if group.error is None:
        return out
    return dispatcher.unpersisted(items, logged, replies, group.error)


async def finish_batch(session: Session, transport: Transport, decoder: FrameDecoder,
                       run: Batch, send: Send) -> None:
    """Run what a batch left: answer its blocked command once served or timed out, and
    run and answer the commands after it or after its output limit, which may block or
    fill the output in turn (rules 2, 3 and 6)."""
    while session.pending or session.blocked is not None:
        if session.blocked is None:
            rest, session.pending = session.pending, []
            out = run(session, rest)
            if session.logged:
                out = await persisted(session, rest, out)
            session.state.stats.net_output_bytes += len(out)
            session.replying = True
            await send(out)
            session.replying = False
        else:
            await _serve_blocked(session, transport, decoder, send)
        if session.closing is not None:
            return


async def _serve_blocked(session: Session, transport: Transport, decoder: FrameDecoder,
                         send: Send) -> None:
    """Answer the blocked command once served or timed out (rules 2 and 3)."""
    blocking, waiter = session.state.blocking, session.blocked
    assert waiter is not None
    if _asked_to_close(session, waiter):
        return
    malformed: list[RemoteProtocolError] = []
    session.idle = waiter.frame is None  # nothing taken yet: shutdown may interrupt the wait
    try:
        with trio.move_on_after(waiter.timeout), waiter.scope:
            await _read_while_blocked(session, transport, decoder, malformed)
    finally:
        session.idle = False
    session.blocked = None
    if waiter.frame is None:
        blocking.release(waiter)
        if malformed:
            raise malformed[0]
        if session.closing is not None:
            return
        out = _NULL_REPLY
    else:
        out = waiter.frame
        if waiter.group is not None:
            await waiter.group.done.wait()
            if waiter.group.error is not None:
                out = encode_error(MisconfError(f"not persisted: {waiter.group.error}"))
    session.state.stats.net_output_bytes += len(out)
    session.replying = True
    await send(out)
    session.replying = False
    if malformed:
        raise malformed[0]


def _asked_to_close(session: Session, waiter: Waiter) -> bool:
    """Whether the session must close, its wait then over before it starts (rule 3); a
    waiter already served still sends its element first."""
    if session.closing is None or waiter.frame is not None:
        return False
    session.state.blocking.release(waiter)
    session.blocked = None
    return True


async def _read_while_blocked(session: Session, transport: Transport, decoder: FrameDecoder,
                              malformed: list[RemoteProtocolError]) -> None:
    """Keep reading while blocked (rule 2), until the waiter is served or times out (a
    cancellation), the stream ends or a frame is malformed. Cancelled reads lose
    nothing: a socket is read only once readable, a TLS stream only when it has data."""
    received = 0
    try:
        while received < PENDING_LIMIT_BYTES:
            data = await transport.receive_some()
            if not data:
                break
            received += len(data)
            session.state.stats.net_input_bytes += len(data)
            session.pending += decoder.feed(data)
        else:
            await trio.sleep_forever()
    except RemoteProtocolError as exc:
        malformed.append(exc)
        return
    except QUIET:
        pass
    session.close_soon(PEER_GONE, interrupt=False)


async def serve_subscriber(session: Session, transport: Transport, decoder: FrameDecoder,
                           run: Batch) -> bool:
    """Serve a subscribed connection (rule 4); True at the end of the stream, False to
    go back to the fast loop or to close."""
    assert session.pubsub is not None
    outbox = session.pubsub.outbox
    malformed: list[RemoteProtocolError] = []
    ended = False
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_write_outbox, session, transport, outbox, nursery.cancel_scope)
        try:
            ended = await _read_subscribed(session, transport, decoder, run, outbox)
        except RemoteProtocolError as exc:
            malformed.append(exc)
        except QUIET:
            ended = True
        nursery.cancel_scope.cancel()
    if malformed:
        raise malformed[0]
    return ended


async def _read_subscribed(session: Session, transport: Transport, decoder: FrameDecoder,
                           run: Batch, outbox: Outbox) -> bool:
    limit = session.state.config.client_output_limit

    async def send(data: bytes) -> None:
        if data:
            outbox.put(data)
            if outbox.size > limit:  # rule 6: the rest of a batch runs once this is sent
                await outbox.drained()

    stats = session.state.stats
    while session.closing is None:
        if session.pending or session.blocked is not None:  # left by the batch that subscribed
            await finish_batch(session, transport, decoder, run, send)
            continue
        if not session.pubsub or not session.pubsub.count:
            await outbox.drained()
            if session.pubsub and not session.pubsub.count:  # nothing ran meanwhile
                session.pubsub = None
                session.update()
                return False
        session.idle = True
        try:
            data = await transport.receive_some()
        finally:
            session.idle = False
        if not data:
            return True
        stats.net_input_bytes += len(data)
        items = decoder.feed(data)
        out = run(session, items)
        if session.logged:
            out = await persisted(session, items, out)
        await send(out)
        if session.pending or session.blocked is not None:
            await finish_batch(session, transport, decoder, run, send)
        session.last_active = time.monotonic()
    return False


async def _write_outbox(session: Session, transport: Transport, outbox: Outbox,
                        scope: trio.CancelScope) -> None:
    """Send a subscriber's outbox as it fills (rule 4)."""
    stats = session.state.stats
    try:
        while True:
            data = await outbox.take()
            session.replying = True
            await transport.send_all(data)
            session.replying = False
            outbox.sent(len(data))
            stats.net_output_bytes += len(data)
    except QUIET:
        session.close_soon(PEER_GONE, interrupt=False)
        scope.cancel()
