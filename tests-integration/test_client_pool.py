"""The blocking Client's pool against a real kv-server: threads, dead connections, retries,
configuration from the environment, and TLS.

test_client.py covers refusals and reply timeouts; this module covers what the pool
promises (SDK ``_sync.py`` / ``_pool.py`` / ``_core.may_retry``):

- one Client is safe to share between threads, within ``max_connections``;
- an idle connection the server closed is dropped before it is used;
- after a broken connection only read-only commands are sent again, unless
  ``retry_writes=True``: a write's fate is unknown, and running it twice may not be safe.

Breaking a connection exactly between "the server ran the command" and "the client
read the reply" is done by :class:`CuttingProxy`, which is deterministic where
killing the server at the right moment is not.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from crypto_helpers import write_tls_files
from integration_helpers import PASSWORD, ServerProcess, start_server
from kv_client import AuthError, Client, ConnectionError, NotIntegerError, WrongPassError

WAIT_S = 5.0
"""The bound on every wait for something the server does asynchronously."""


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def names(observer: Client, name: str) -> list[dict[str, Any]]:
    return [entry for entry in observer.client_list() if entry["name"] == name]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket's path is limited to about 100 bytes."""
    with tempfile.TemporaryDirectory(prefix="kv-", dir="/tmp") as where:
        yield Path(where)


# -- threads ------------------------------------------------------------------------------

THREADS = 20
INCRS_PER_THREAD = 50


@pytest.mark.parametrize("pool_timeout", [
    None,
    5.0,
], ids=["wait-forever", "bounded-wait"])
def test_threads_share_one_client_within_its_pool(kv_server: ServerProcess,
                                                  pool_timeout: float | None) -> None:
    """20 threads on one Client: every INCR counted once, never more connections than
    allowed, and a thread that finds them all busy waits for one (for ever by default)."""
    max_connections = 5
    samples: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS + 1, timeout=WAIT_S)
    with kv_server.client(name="threads", max_connections=max_connections,
                          pool_timeout=pool_timeout) as kv, \
            kv_server.client(name="observer") as observer:
        def worker() -> None:
            try:
                start.wait()
                for _ in range(INCRS_PER_THREAD):
                    kv.incr("threads:n")
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        start.wait()
        while any(thread.is_alive() for thread in threads):
            samples.append(len(names(observer, "threads")))
        for thread in threads:
            thread.join(WAIT_S)
        assert not failures, failures
        assert kv.get("threads:n") == THREADS * INCRS_PER_THREAD
        assert samples and max(samples) <= max_connections
        assert 2 <= len(names(observer, "threads")) <= max_connections


# -- connections the server closed ----------------------------------------------------------

def test_an_idle_connection_killed_by_the_server_is_dropped(kv_server: ServerProcess) -> None:
    """CLIENT KILL closes a pooled connection while it is idle. The next command is a
    write, which is never re-sent, so it succeeding proves the pool saw the dead
    socket (readable while idle) and did not send on it."""
    with kv_server.client(name="victim") as kv, kv_server.client(name="killer") as killer:
        victim_id = kv.client_id()
        assert killer.client_kill(victim_id) == 1
        wait_until(lambda: not names(killer, "victim"), "the server dropped the connection")
        time.sleep(0.05)  # its FIN crosses the loopback
        assert kv.incr("idle:n") == 1
        assert kv.client_id() != victim_id


def test_reads_and_writes_after_a_restart_on_the_same_unix_socket(short_dir: Path) -> None:
    """SIGKILL, then a new server on the same data and socket path: the pooled client
    carries on without an error, since its dead connection is dropped, not used."""
    socket_path = short_dir / "kv.sock"
    args = ("--unix", str(socket_path), "--appendfsync", "always")
    server = start_server(short_dir / "data", *args)
    with Client(unix_path=socket_path, password=PASSWORD) as kv:
        kv.set("k", "v")
        assert kv.incr("n") == 1
        server.stop(signal.SIGKILL)
        server = start_server(short_dir / "data", *args)
        assert kv.get("k") == "v"
        assert kv.incr("n") == 2
    assert server.stop() == 0, server.log()


def test_a_write_in_flight_when_the_server_dies_is_not_sent_again(short_dir: Path) -> None:
    """INCR is sent to a frozen server, which is then killed: the caller gets
    ConnectionError, and after a restart the counter shows the INCR ran at most once."""
    socket_path = short_dir / "kv.sock"
    args = ("--unix", str(socket_path), "--appendfsync", "always")
    server = start_server(short_dir / "data", *args)
    outcome: list[object] = []
    with Client(unix_path=socket_path, password=PASSWORD, retry_writes=False) as kv:
        assert kv.incr("n") == 1

        def write() -> None:
            try:
                outcome.append(kv.incr("n"))
            except ConnectionError as exc:
                outcome.append(exc)

        server.proc.send_signal(signal.SIGSTOP)
        thread = threading.Thread(target=write)
        thread.start()
        time.sleep(0.2)  # the INCR is in the frozen server's socket buffer
        server.stop(signal.SIGKILL)
        thread.join(WAIT_S)
        [error] = outcome
        assert isinstance(error, ConnectionError)
        assert "cannot connect" not in str(error)  # it was sent, then the connection broke
        server = start_server(short_dir / "data", *args)
        assert kv.get("n") == 1
    assert server.stop() == 0, server.log()


class CuttingProxy:
    """A TCP proxy to a server that, when armed, swallows the next reply and cuts the
    connection: the server ran the command, the client never hears back.

    ``accepted`` counts client connections, so a test sees whether the client came
    back on a new one.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.upstream = (server.host, server.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.accepted = 0
        self._closing = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            downstream.settimeout(None)
            upstream = socket.create_connection(self.upstream, timeout=WAIT_S)
            upstream.settimeout(None)
            self.accepted += 1
            self._sockets += [downstream, upstream]
            for source, sink, cuts in ((downstream, upstream, False), (upstream, downstream, True)):
                thread = threading.Thread(target=self._pump, args=(source, sink, cuts))
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, cuts: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if cuts and self.armed.is_set():
                    self.armed.clear()
                    break
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(WAIT_S)
        for sock in [self.listener, *self._sockets]:
            sock.close()


@pytest.fixture
def proxy(kv_server: ServerProcess) -> Iterator[CuttingProxy]:
    cutting = CuttingProxy(kv_server)
    yield cutting
    cutting.close()


def test_a_read_whose_reply_was_lost_is_sent_again(proxy: CuttingProxy, client: Client) -> None:
    client.set("k", "v")
    with Client("127.0.0.1", proxy.port, password=PASSWORD) as kv:
        assert kv.ping() == "PONG"
        proxy.armed.set()
        assert kv.get("k") == "v"
        assert kv.pipeline().get("k").exists("k").execute() == ["v", 1]  # reads only: retried too
        assert proxy.accepted == 2


def test_a_write_whose_reply_was_lost_is_not_sent_again(proxy: CuttingProxy, client: Client) -> None:
    with Client("127.0.0.1", proxy.port, password=PASSWORD) as kv:
        assert kv.ping() == "PONG"
        proxy.armed.set()
        with pytest.raises(ConnectionError, match="closed the connection"):
            kv.incr("n")
        assert client.get("n") == 1  # it ran once and was not re-sent
        assert kv.ping() == "PONG"  # a new connection, whose handshake the proxy must not cut
        proxy.armed.set()
        with pytest.raises(ConnectionError):
            kv.pipeline().get("n").incr("n").execute()  # one write makes the batch a write
        assert client.get("n") == 2
        assert proxy.accepted == 2  # the second connection, for the pipeline; no retries


def test_retry_writes_sends_a_write_again(proxy: CuttingProxy, client: Client) -> None:
    """What retry_writes buys and costs: no error, but INCR ran twice."""
    with Client("127.0.0.1", proxy.port, password=PASSWORD, retry_writes=True) as kv:
        assert kv.ping() == "PONG"
        proxy.armed.set()
        assert kv.incr("n") == 2
        assert client.get("n") == 2
        assert proxy.accepted == 2


# -- pipelines -------------------------------------------------------------------------------

def test_sync_pipelines(client: Client) -> None:
    """Replies in order, errors in place or raised after every command ran, each command
    run exactly once (the server's command count), and an unexecuted ``with`` discarded."""
    before = client.info("stats")["stats"]["total_commands_processed"]
    pipe = client.pipeline()
    for i in range(100):
        pipe.set(f"p:{i}", i)
    pipe.set("p:text", "x").incr("p:text").incr("p:0").mget("p:1", "p:99")
    results = pipe.execute(raise_on_error=False)
    assert results[:100] == [True] * 100
    assert isinstance(results[101], NotIntegerError)
    assert results[100:101] + results[102:] == [True, 1, [1, 99]]
    after = client.info("stats")["stats"]["total_commands_processed"]
    assert after - before == 104 + 1  # the first INFO is counted once it has run
    with pytest.raises(NotIntegerError):
        client.pipeline().incr("p:text").incr("p:0").execute()
    assert client.get("p:0") == 2
    with client.pipeline() as unsent:
        unsent.set("p:unsent", 1)
    assert unsent.execute() == []
    assert client.exists("p:unsent") == 0


# -- configuration -----------------------------------------------------------------------------

def test_kv_url_configures_a_client_given_no_arguments(
        kv_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KV_PASS", raising=False)
    monkeypatch.setenv("KV_URL", f"kv://:{PASSWORD}@127.0.0.1:{kv_server.port}?name=from-env")
    with Client() as kv:
        assert kv.ping() == "PONG"
        assert [c["name"] for c in kv.client_list()] == ["from-env"]


def test_kv_pass_completes_a_url_without_password(
        kv_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_URL", f"kv://127.0.0.1:{kv_server.port}")
    monkeypatch.setenv("KV_PASS", PASSWORD)
    with Client() as kv:
        assert kv.ping() == "PONG"


def test_explicit_arguments_win_over_the_url_and_the_environment(
        kv_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arguments beat the URL, which beats KV_PASS; an address given ignores KV_URL."""
    monkeypatch.setenv("KV_URL", "kv://:wrong@127.0.0.1:1")
    monkeypatch.setenv("KV_PASS", "wrong too")
    url = "kv://:wrong@127.0.0.1:1?name=from-url&timeout=7"
    with Client(url=url, port=kv_server.port, password=PASSWORD, name="explicit") as kv:
        assert kv.ping() == "PONG"
        assert kv.config.timeout_s == 7  # what the arguments leave out still comes from the URL
        assert [c["name"] for c in kv.client_list()] == ["explicit"]
    with Client.from_url(f"kv://:{PASSWORD}@127.0.0.1:{kv_server.port}") as kv:
        assert kv.ping() == "PONG"  # the URL's password beats KV_PASS
    with Client(kv_server.host, kv_server.port, password=PASSWORD) as kv:
        assert kv.ping() == "PONG"  # KV_URL's port 1 was not used


def test_a_wrong_password_raises_wrongpasserror(kv_server: ServerProcess) -> None:
    with Client(kv_server.host, kv_server.port, password="not the password") as kv:
        for _ in range(2):  # every attempt, not only the first
            with pytest.raises(WrongPassError, match="WRONGPASS") as raised:
                kv.ping()
            assert isinstance(raised.value, AuthError)
            assert "not the password" not in str(raised.value)


# -- TLS --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.contextmanager
def tls_server(ca: trustme.CA, where: Path, *names: str) -> Iterator[ServerProcess]:
    files, _ = write_tls_files(ca, where / "pki", *names)
    server = start_server(where / "data", tls=files)
    yield server
    assert server.stop() == 0, server.log()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_tls_verifies_the_certificate_and_its_name(ca: trustme.CA, tmp_path: Path) -> None:
    with tls_server(ca, tmp_path, "127.0.0.1", "localhost") as server:
        with Client(server.host, server.tls_port, password=PASSWORD, ssl=trusting(ca)) as kv:
            kv.set("k", b"over tls")
            assert kv.get("k") == b"over tls"
            assert kv.client_list()[0]["transport"] == "tls"
        with Client(server.host, server.tls_port, password=PASSWORD, ssl=trusting(ca),
                    server_hostname="localhost") as kv:
            assert kv.ping() == "PONG"
        with Client(server.host, server.tls_port, password=PASSWORD, ssl=True) as kv, \
                pytest.raises(ConnectionError, match="certificate verify failed"):
            kv.ping()  # the system's store does not hold the test CA


def test_tls_refuses_a_certificate_for_another_name(ca: trustme.CA, tmp_path: Path) -> None:
    with tls_server(ca, tmp_path, "kv.example.org") as server:
        with Client(server.host, server.tls_port, password=PASSWORD, ssl=trusting(ca)) as kv, \
                pytest.raises(ConnectionError, match=r"(?i)certificate verify failed.*mismatch"):
            kv.ping()
        with Client(server.host, server.tls_port, password=PASSWORD, ssl=trusting(ca),
                    server_hostname="kv.example.org") as kv:
            assert kv.ping() == "PONG"  # the name the certificate does carry
