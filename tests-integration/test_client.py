"""kv_client's transport behaviour against a real server: refusals, timeouts, reconnects."""

from __future__ import annotations

import os
import signal
import socket

import pytest

from integration_helpers import PASSWORD, ServerProcess
from kv_client import Client, ConnectionError, LocalProtocolError, TimeoutError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(ConnectionError, match=f"cannot connect to 127.0.0.1:{port}"), \
            Client("127.0.0.1", port, password="x") as kv:
        kv.ping()


def test_reply_timeout_closes_and_the_next_command_reconnects(kv_server: ServerProcess) -> None:
    with kv_server.client(timeout=0.5) as kv:
        kv.set("k", 1)
        first_id = kv.client_id()
        os.kill(kv_server.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(TimeoutError, match=r"no reply from 127\.0\.0\.1"):
                kv.get("k")
        finally:
            os.kill(kv_server.proc.pid, signal.SIGCONT)
        assert kv.get("k") == 1
        assert kv.client_id() != first_id


def test_handshake_timeout_on_a_silent_peer() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        with pytest.raises(TimeoutError, match="no handshake reply"), \
                Client("127.0.0.1", port, password="x", connect_timeout=0.3) as kv:
            kv.ping()


def test_values_kv_cannot_store_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(LocalProtocolError, match="is a set"):
        client.set("k", {1, 2})  # type: ignore[arg-type]
    assert client.ping() == "PONG"


def test_password_from_the_environment(kv_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_PASS", PASSWORD)
    with Client(kv_server.host, kv_server.port) as kv:
        assert kv.ping() == "PONG"
    assert "integration" not in repr(Client(password=PASSWORD))


class SimulatedInterruptError(Exception):
    """Stands for Ctrl-C arriving while a reply is awaited."""


def test_an_interrupted_request_never_hands_its_reply_to_the_next(kv_server: ServerProcess) -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise SimulatedInterruptError

    with kv_server.client() as kv:
        kv.mset({"a": "A", "b": "B"})
        previous = signal.signal(signal.SIGALRM, interrupt)
        os.kill(kv_server.proc.pid, signal.SIGSTOP)  # the reply to GET a is held back
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            with pytest.raises(SimulatedInterruptError):
                kv.get("a")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            os.kill(kv_server.proc.pid, signal.SIGCONT)
        assert kv.get("b") == "B"
