"""kv-server's TLS listener, end to end: the real process, Python's ssl module as client.

kv_client has no TLS yet, so these tests speak the kv handshake by hand through
kv_protocol's ClientConnection over an ``ssl.SSLSocket``; the plain listener is
checked with kv_client, to show that both serve at once.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from crypto_helpers import write_tls_files
from integration_helpers import RawConnection, ServerProcess, TlsFiles, start_server
from kv_protocol.connection import State


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The server's files, with the CA as ``ca`` for the tests that require client certificates."""
    files, ca_file = write_tls_files(ca, tmp_path_factory.mktemp("pki"), "127.0.0.1", "localhost")
    return TlsFiles(files.cert, files.key, ca_file)


@contextlib.contextmanager
def running(tmp_path: Path, files: TlsFiles) -> Iterator[ServerProcess]:
    """A kv-server with TLS, stopped afterwards; it must exit cleanly."""
    server = start_server(tmp_path / "data", tls=files)
    yield server
    assert server.stop() == 0, server.log()


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


def test_tls_and_plain_tcp_serve_the_same_data(
    tmp_path: Path, ca: trustme.CA, tls_files: TlsFiles
) -> None:
    with running(tmp_path, TlsFiles(tls_files.cert, tls_files.key)) as server:
        assert server.tls_port and server.tls_port != server.port
        assert f"tls 127.0.0.1:{server.tls_port}" in server.addresses
        tls = RawConnection(server, tls=client_context(ca))
        with tls.sock:
            tls.handshake()
            assert tls.call("SET", "greeting", "over TLS") == "OK"
            info = tls.call("INFO", "server")
            assert isinstance(info, dict) and info["server"]["tls_port"] == server.tls_port
            with server.client() as plain:
                assert plain.get("greeting") == "over TLS"
                plain.set("greeting", "over TCP")
            assert tls.call("GET", "greeting") == "over TCP"


def test_tls_ca_admits_only_clients_with_its_certificates(
    tmp_path: Path, ca: trustme.CA, tls_files: TlsFiles
) -> None:
    with running(tmp_path, tls_files) as server:
        anonymous = RawConnection(server, tls=client_context(ca))
        with anonymous.sock:
            # TLS 1.3 clients finish their side first; the server then closes.
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                anonymous.handshake()
            assert anonymous.conn.state is not State.READY
        member = RawConnection(server, tls=client_context(ca, ca.issue_cert("app@example.com")))
        with member.sock:
            member.handshake()
            assert member.call("PING") == "PONG"


def test_a_tls_client_gone_while_blocked_is_not_served_an_element(
    tmp_path: Path, ca: trustme.CA, tls_files: TlsFiles
) -> None:
    """The server peeks at a blocked TLS client's raw socket before serving it, so a
    hang-up its connection task has not read yet keeps the element (from a review)."""
    from kv_protocol.framing import encode_frame

    with running(tmp_path, TlsFiles(tls_files.cert, tls_files.key)) as server:
        admin = RawConnection(server)
        with admin.sock:
            admin.handshake()
            for round_ in range(20):
                blocked = RawConnection(server, tls=client_context(ca))
                blocked.handshake()
                blocked.sock.sendall(encode_frame(["BLPOP", "q", 0]))
                while not any(c["blocked"] for c in admin.call("CLIENT", "LIST")):  # type: ignore[union-attr,index]
                    pass
                raw = socket.socket(fileno=blocked.sock.detach())  # no TLS goodbye: a killed client
                raw.close()
                assert admin.call("RPUSH", "q", round_) == 1
                assert admin.call("LPOP", "q") == round_, f"round {round_}: the element was lost"
