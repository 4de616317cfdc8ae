"""kv_client.AsyncClient against a real kv-server, under trio and under asyncio.

Each test body is written once against the client and runs twice, through
``trio.run`` and ``asyncio.run`` (DESIGN/STYLE rule 16: everything above the
transport seam is shared, so the same behaviour must hold on both). The few
things that differ between the libraries (spawning tasks, cancelling) go through
the small neutral helpers below. Every body runs under an overall deadline, and
every SIGSTOP is undone in a ``finally``, so a failure never hangs the suite.

One server (TCP, a Unix socket and TLS) serves the whole module; tests use their
own keys and connection names, so they do not depend on a fresh keyspace.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import signal
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sniffio
import trio
import trustme

from crypto_helpers import write_tls_files
from integration_helpers import PASSWORD, ServerProcess, start_server
from kv_client import (
    AsyncClient,
    ConnectionError,
    NotIntegerError,
    ServerError,
    TimeoutError,
    WrongTypeError,
)
from kv_protocol.values import Value
from protocol_helpers import same

BODY_DEADLINE_S = 10.0
"""No test body needs more than a second or two; a hang fails instead of waiting."""

Body = Callable[[], Awaitable[None]]
Runner = Callable[[Body], None]


def run_trio(body: Body) -> None:
    async def bounded() -> None:
        with trio.fail_after(BODY_DEADLINE_S):
            await body()

    trio.run(bounded)


def run_asyncio(body: Body) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(BODY_DEADLINE_S):
            await body()

    asyncio.run(bounded())


both = pytest.mark.parametrize("run", [run_trio, run_asyncio], ids=["trio", "asyncio"])


# -- library-neutral task helpers ------------------------------------------------------

def _trio() -> bool:
    return sniffio.current_async_library() == "trio"


async def sleep(seconds: float) -> None:
    await (trio.sleep(seconds) if _trio() else asyncio.sleep(seconds))


async def gather(*bodies: Body) -> None:
    """Run ``bodies`` as concurrent tasks and wait for all of them."""
    if _trio():
        async with trio.open_nursery() as nursery:
            for body in bodies:
                nursery.start_soon(body)
    else:
        await asyncio.gather(*(body() for body in bodies))


async def cancelled_after(seconds: float, body: Body) -> bool:
    """Run ``body``, cancelling it after ``seconds``; True if it was cancelled.

    asyncio's ``timeout`` turns the cancellation into the built-in TimeoutError,
    which kv_client.TimeoutError also is, so ``expired()`` tells them apart.
    """
    if _trio():
        with trio.move_on_after(seconds) as scope:
            await body()
        return scope.cancelled_caught
    try:
        async with asyncio.timeout(seconds) as timeout:
            await body()
    except builtins.TimeoutError:
        if not timeout.expired():
            raise
        return True
    return False


@contextlib.contextmanager
def stopped(server: ServerProcess) -> Iterator[None]:
    """The server process frozen with SIGSTOP: connections stay open, nothing is answered."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


# -- the module's server -------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, Path]:
    """A CA and the directory holding its certificate and the server's."""
    return trustme.CA(), tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           pki: tuple[trustme.CA, Path]) -> Iterator[ServerProcess]:
    ca, where = pki
    files, _ = write_tls_files(ca, where, "127.0.0.1", "localhost")
    base = tmp_path_factory.mktemp("kv")
    started = start_server(base / "data", "--unix", str(base / "kv.sock"), tls=files)
    yield started
    assert started.stop() == 0, started.log()


@pytest.fixture
def ca_file(pki: tuple[trustme.CA, Path], server: ServerProcess) -> Path:
    return pki[1] / "ca.pem"


def tcp_client(server: ServerProcess, **options: Any) -> AsyncClient:
    options.setdefault("password", PASSWORD)
    return AsyncClient(server.host, server.port, **options)


def connections_named(clients: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in clients if entry["name"] == name]


# -- values and errors ---------------------------------------------------------------

VALUES: dict[str, Value] = {
    "none": None, "true": True, "false": False, "zero": 0, "int": -42, "big": 2**70,
    "float": 1.5, "whole float": 2.0, "infinity": float("-inf"), "text": "héllo ✓",
    "empty text": "", "bytes": b"\x00\xff raw", "empty bytes": b"",
    "list": [1, "1", b"1", 1.0, True, None, [[]]],
    "map": {"a": 1, 2: "b", b"c": [True], None: {}, False: 0.5},
}


@both
def test_every_value_type_round_trips_with_its_type(run: Runner, server: ServerProcess) -> None:
    """kv keeps Python types: 1, 1.0, True, "1" and b"1" must come back as themselves,
    as plain values, list elements and hash fields alike."""
    async def body() -> None:
        async with tcp_client(server) as kv:
            for name, value in VALUES.items():
                assert await kv.set(f"rt:{name}", value) is True
                got = await kv.get(f"rt:{name}")
                assert same(got, value), (name, got)
            got_all = await kv.mget(*(f"rt:{name}" for name in VALUES))
            assert all(same(a, b) for a, b in zip(got_all, VALUES.values(), strict=True))
            await kv.delete("rt:list-key", "rt:hash-key")
            await kv.rpush("rt:list-key", *VALUES.values())
            assert same(await kv.lrange("rt:list-key", 0, -1), list(VALUES.values()))
            by_bytes: dict[str | bytes, Value] = {name.encode(): v for name, v in VALUES.items()}
            await kv.hset("rt:hash-key", by_bytes)  # bytes field names stay bytes
            assert same(await kv.hgetall("rt:hash-key"), by_bytes)

    run(body)


@both
def test_error_replies_raise_typed_errors_and_the_connection_stays(run: Runner,
                                                                   server: ServerProcess) -> None:
    """An error reply is an answer, not a failure: the same connection serves the next command."""
    async def body() -> None:
        async with tcp_client(server) as kv:
            await kv.set("err:text", "not a number")
            first = await kv.client_id()
            with pytest.raises(WrongTypeError, match="WRONGTYPE"):
                await kv.lpush("err:text", 1)
            with pytest.raises(NotIntegerError):
                await kv.incr("err:text")
            with pytest.raises(ServerError, match="wrong number of arguments"):
                await kv.execute_command("GET")
            assert await kv.get("err:text") == "not a number"
            assert await kv.client_id() == first

    run(body)


# -- pipelines and scan ----------------------------------------------------------------

@both
def test_pipelines_keep_order_and_errors(run: Runner, server: ServerProcess) -> None:
    """Results come back in request order; an error stops nothing, and can be kept in place."""
    async def body() -> None:
        async with tcp_client(server) as kv:
            await kv.delete("pipe:n", "pipe:s", "pipe:unsent")
            pipe = kv.pipeline()
            pipe.set("pipe:n", 1).incr("pipe:n").set("pipe:s", "x").incr("pipe:s").get("pipe:n")
            results = await pipe.execute(raise_on_error=False)
            assert results[:3] == [True, 2, True]
            assert isinstance(results[3], NotIntegerError)
            assert results[4] == 2
            pipe.incr("pipe:s").incr("pipe:n")
            with pytest.raises(NotIntegerError):
                await pipe.execute()
            assert await kv.get("pipe:n") == 3  # the command after the error ran
            async with kv.pipeline() as unsent:
                unsent.set("pipe:unsent", 1)
                assert len(unsent) == 1
            assert len(unsent) == 0
            assert await unsent.execute() == []
            assert await kv.exists("pipe:unsent") == 0

    run(body)


@both
def test_scan_iter_follows_the_cursor_to_the_end(run: Runner, server: ServerProcess) -> None:
    """More keys than one SCAN returns: every one is yielded exactly once."""
    async def body() -> None:
        async with tcp_client(server) as kv:
            wanted = {f"scan:{i}" for i in range(300)}
            await kv.mset(dict.fromkeys(wanted, 0))
            await kv.set("other:1", 0)
            found = [key async for key in kv.scan_iter(match="scan:*", count=25)]
            assert len(found) == len(wanted)
            assert set(found) == wanted

    run(body)


# -- concurrency and the pool ------------------------------------------------------------

TASKS = 50
INCRS_PER_TASK = 20


@both
def test_many_tasks_share_one_client_within_its_pool(run: Runner, server: ServerProcess,
                                                     request: pytest.FixtureRequest) -> None:
    """50 tasks on one client: no reply goes to the wrong task, and the pool's bound holds."""
    name = f"many-{request.node.callspec.id}"
    max_connections = 4

    async def body() -> None:
        samples: list[int] = []
        done = False
        async with tcp_client(server, name=name, max_connections=max_connections) as kv, \
                tcp_client(server, name="observer") as observer:
            await kv.delete("many:n")

            async def worker() -> None:
                for _ in range(INCRS_PER_TASK):
                    await kv.incr("many:n")

            async def workers() -> None:
                nonlocal done
                await gather(*[worker] * TASKS)
                done = True

            async def sample() -> None:
                while not done:
                    samples.append(len(connections_named(await observer.client_list(), name)))
                    await sleep(0.005)

            await gather(workers, sample)
            assert await kv.get("many:n") == TASKS * INCRS_PER_TASK
            assert samples and max(samples) <= max_connections
            # All 50 tasks asked at once, so the pool opened every connection it may.
            assert len(connections_named(await observer.client_list(), name)) == max_connections

    run(body)


@both
def test_pool_timeout_when_every_connection_is_busy(run: Runner, server: ServerProcess) -> None:
    """With its one connection held by a request the frozen server never answers, a second
    command gives up after pool_timeout instead of waiting for ever."""
    async def body() -> None:
        async with tcp_client(server, max_connections=1, pool_timeout=0.2) as kv:
            await kv.connect()
            with stopped(server):
                async def holder() -> None:
                    assert await cancelled_after(0.6, lambda: kv.get("busy:k"))

                async def waiter() -> None:
                    await sleep(0.05)  # the holder has the connection by now
                    with pytest.raises(ConnectionError, match=r"all 1 connections .* stayed busy "
                                                              r"for 0\.2 s"):
                        await kv.get("busy:k")

                await gather(holder, waiter)
            assert await kv.ping() == "PONG"  # the cancelled holder gave its slot back

    run(body)


@both
def test_reply_timeout_closes_and_the_next_command_reconnects(run: Runner,
                                                             server: ServerProcess) -> None:
    async def body() -> None:
        async with tcp_client(server, timeout=0.5) as kv:
            await kv.set("timeout:k", 1)
            first = await kv.client_id()
            with stopped(server), pytest.raises(TimeoutError, match=r"no reply from 127\.0\.0\.1"):
                await kv.get("timeout:k")
            assert await kv.get("timeout:k") == 1
            assert await kv.client_id() != first

    run(body)


@both
def test_a_cancelled_request_never_hands_its_reply_to_the_next(run: Runner,
                                                              server: ServerProcess) -> None:
    """GET a is cancelled while the server is frozen; once it thaws, it answers GET a on
    the old connection. GET b must get B: the old connection must not be reused, and
    the pool's only slot must have been given back."""
    async def body() -> None:
        async with tcp_client(server, max_connections=1, pool_timeout=2) as kv:
            await kv.mset({"cancel:a": "A", "cancel:b": "B"})
            with stopped(server):
                assert await cancelled_after(0.3, lambda: kv.get("cancel:a"))
            assert await kv.get("cancel:b") == "B"
            assert await kv.get("cancel:a") == "A"

    run(body)


@both
def test_an_idle_connection_killed_by_the_server_is_dropped(run: Runner, server: ServerProcess,
                                                           request: pytest.FixtureRequest) -> None:
    """The next command after CLIENT KILL is a write, which is never re-sent: it succeeds
    only if the pool saw the idle socket close (each library exposes it differently)."""
    name = f"victim-{request.node.callspec.id}"

    async def body() -> None:
        async with tcp_client(server, name=name) as kv, tcp_client(server) as killer:
            await kv.delete(f"{name}:n")
            victim = await kv.client_id()
            assert await killer.client_kill(victim) == 1
            for _ in range(500):  # bounded: 5 s
                if not connections_named(await killer.client_list(), name):
                    break
                await sleep(0.01)
            await sleep(0.05)  # the FIN crosses the loopback
            assert await kv.incr(f"{name}:n") == 1
            assert await kv.client_id() != victim

    run(body)


# -- transports and URLs -----------------------------------------------------------------

@both
def test_unix_socket(run: Runner, server: ServerProcess) -> None:
    unix_path = server.unix_path
    assert unix_path is not None

    async def body() -> None:
        async with AsyncClient(unix_path=unix_path, password=PASSWORD, name="over-unix") as kv:
            await kv.set("unix:k", [1, b"2"])
            assert await kv.get("unix:k") == [1, b"2"]
            [me] = connections_named(await kv.client_list(), "over-unix")
            assert me["transport"] == "unix"

    run(body)


@both
def test_tls_with_a_trusted_ca(run: Runner, server: ServerProcess, ca_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))

    async def body() -> None:
        async with AsyncClient(server.host, server.tls_port, password=PASSWORD, ssl=context,
                               name="over-tls") as kv:
            await kv.set("tls:k", {"secret": True})
            assert await kv.get("tls:k") == {"secret": True}
            [me] = connections_named(await kv.client_list(), "over-tls")
            assert me["transport"] == "tls"

    run(body)


@both
def test_tls_without_trusting_the_ca_fails_verification(run: Runner, server: ServerProcess) -> None:
    """The system's store does not hold the test CA: the client must refuse the server."""
    async def body() -> None:
        async with AsyncClient(server.host, server.tls_port, password=PASSWORD, ssl=True,
                               connect_timeout=5) as kv:
            with pytest.raises(ConnectionError, match=r"(?i)certificate verif"):
                await kv.ping()

    run(body)


@both
def test_url_forms(run: Runner, server: ServerProcess, ca_file: Path) -> None:
    """The three schemes reach the same keyspace; each names its transport in CLIENT LIST."""
    urls = {
        "tcp": f"kv://:{PASSWORD}@127.0.0.1:{server.port}?name=url-tcp&timeout=5",
        "unix": f"unix://{server.unix_path}?password={PASSWORD}&name=url-unix",
        "tls": f"kvs://:{PASSWORD}@127.0.0.1:{server.tls_port}?ca={ca_file}&name=url-tls",
    }

    async def body() -> None:
        for transport, url in urls.items():
            async with AsyncClient.from_url(url) as kv:
                await kv.set(f"url:{transport}", transport)
                assert await kv.get("url:tcp") == "tcp"
                [me] = connections_named(await kv.client_list(), f"url-{transport}")
                assert me["transport"] == transport

    run(body)


async def test_native_trio_mode(server: ServerProcess) -> None:
    """pytest-trio's trio_mode runs ``async def`` tests under trio directly, too."""
    with trio.fail_after(BODY_DEADLINE_S):
        async with tcp_client(server) as kv:
            async with trio.open_nursery() as nursery:
                for i in range(10):
                    nursery.start_soon(kv.set, f"native:{i}", i)
            assert await kv.mget(*(f"native:{i}" for i in range(10))) == list(range(10))
