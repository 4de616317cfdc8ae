"""TLS listeners, in-process: real sockets on port 0, certificates made by trustme.

The kv handshake and commands are the same over TLS, so these tests check what TLS
adds: the listener beside the plain ones, the handshake deadline covering the TLS
handshake, client certificates under --tls-ca, clean closes (close_notify), and
start-up errors that name the bad file.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme
from cryptography.hazmat.primitives import serialization

from kv_protocol.connection import State
from kv_protocol.messages import PUSH, Push
from kv_server import ServerState, serve
from kv_server._cli import build_parser, config_from_args, main
from kv_server._tls import server_context
from server_helpers import Peer, make_config

Start = Callable[..., Awaitable[ServerState]]


@dataclass(frozen=True)
class Pki:
    """A CA and the files of a server certificate for 127.0.0.1 and localhost."""

    ca: trustme.CA
    cert: Path
    key: Path
    ca_file: Path

    def client_context(self, *, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if client_cert is not None:
            client_cert.configure_cert(context)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    where = tmp_path_factory.mktemp("pki")
    cert, key, ca_file = where / "server.pem", where / "server.key", where / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return Pki(ca, cert, key, ca_file)


@pytest.fixture
def start(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Start:
    """Start a server with TLS on a free port (and plain TCP on another)."""

    async def run(nursery: trio.Nursery, **changes: object) -> ServerState:
        options: dict[str, object] = {"data_dir": tmp_path_factory.mktemp("data"),
                                      "tls_cert": pki.cert, "tls_key": pki.key, "tls_port": 0}
        config = make_config(**{**options, **changes})
        state: ServerState = await nursery.start(functools.partial(serve, config))
        return state

    return run


async def tls_peer(state: ServerState, context: ssl.SSLContext) -> Peer:
    tcp = await trio.open_tcp_stream("127.0.0.1", state.tls_port)
    return Peer(trio.SSLStream(tcp, context, server_hostname="127.0.0.1"))


async def test_tls_serves_beside_plain_tcp(nursery: trio.Nursery, start: Start, pki: Pki) -> None:
    with trio.fail_after(10):
        state = await start(nursery)
        assert 0 < state.tls_port != state.tcp_port > 0
        assert state.addresses == [f"tcp 127.0.0.1:{state.tcp_port}",
                                   f"tls 127.0.0.1:{state.tls_port}"]
        peer = await tls_peer(state, pki.client_context())
        async with peer.stream:
            await peer.handshake()
            assert await peer.call("SET", "k", 12345) == "OK"
            assert await peer.call("GET", "k") == 12345
            info = await peer.call("INFO", "server")
            assert isinstance(info, dict) and info["server"]["tls_port"] == state.tls_port
            listed = await peer.call("CLIENT", "LIST")
            assert isinstance(listed, list) and [c["transport"] for c in listed] == ["tls"]
            plain = Peer(await trio.open_tcp_stream("127.0.0.1", state.tcp_port))
            async with plain.stream:
                await plain.handshake()
                assert await plain.call("GET", "k") == 12345
            state.request_shutdown()
            assert await peer.messages(1) == [(PUSH, Push("kill", ("server is shutting down",)))]
            # A clean TLS end (close_notify): a truncated stream would raise here.
            assert await peer.closed()


async def test_no_tcp_leaves_only_tls(nursery: trio.Nursery, start: Start, pki: Pki) -> None:
    with trio.fail_after(10):
        state = await start(nursery, tcp=False)
        assert (state.tcp_port, state.addresses) == (0, [f"tls 127.0.0.1:{state.tls_port}"])
        peer = await tls_peer(state, pki.client_context())
        async with peer.stream:
            await peer.handshake()
            assert await peer.call("PING") == "PONG"
        state.request_shutdown()


async def test_plain_text_on_the_tls_port_is_closed_and_serving_goes_on(
    nursery: trio.Nursery, start: Start, pki: Pki
) -> None:
    with trio.fail_after(10):
        state = await start(nursery)
        plain = Peer(await trio.open_tcp_stream("127.0.0.1", state.tls_port))
        async with plain.stream:
            await plain.stream.send_all(plain.conn.data_to_send())  # a kv hello, in clear
            while await plain.stream.receive_some():  # perhaps a TLS alert, then EOF
                pass
        peer = await tls_peer(state, pki.client_context())
        async with peer.stream:
            await peer.handshake()
            assert await peer.call("PING") == "PONG"
        assert state.stats.handshake_timeouts == 0
        state.request_shutdown()


async def test_a_silent_peer_is_closed_after_the_handshake_timeout(
    nursery: trio.Nursery, start: Start, pki: Pki
) -> None:
    with trio.fail_after(10):
        state = await start(nursery, handshake_timeout_s=0.5)
        silent = await trio.open_tcp_stream("127.0.0.1", state.tls_port)
        async with silent:
            started = trio.current_time()
            # The silent peer does not hold up the accept loop.
            peer = await tls_peer(state, pki.client_context())
            async with peer.stream:
                await peer.handshake()
                assert await peer.call("PING") == "PONG"
            assert await silent.receive_some() == b""  # no ClientHello: closed
            assert 0.4 < trio.current_time() - started < 2.5
        assert state.stats.handshake_timeouts == 1
        state.request_shutdown()


async def test_tls_ca_requires_a_client_certificate_it_signed(
    nursery: trio.Nursery, start: Start, pki: Pki
) -> None:
    with trio.fail_after(10):
        state = await start(nursery, tls_ca=pki.ca_file)
        for stranger in (None, trustme.CA().issue_cert("stranger@example.com")):
            refused = await tls_peer(state, pki.client_context(client_cert=stranger))
            async with refused.stream:
                with pytest.raises(trio.BrokenResourceError):
                    await refused.handshake()
            assert refused.conn.state is not State.READY
        member = pki.ca.issue_cert("app@example.com")
        peer = await tls_peer(state, pki.client_context(client_cert=member))
        async with peer.stream:
            await peer.handshake()
            assert await peer.call("PING") == "PONG"
        state.request_shutdown()


async def test_a_missing_certificate_fails_before_starting(
    nursery: trio.Nursery, start: Start, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=f"cannot read the TLS certificate {missing}"):
        await start(nursery, tls_cert=missing)


def _encrypted(key: Path, into: Path) -> Path:
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    into.write_bytes(loaded.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"pass")))
    return into


def test_unusable_files_are_named(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM\n")
    other_key = tmp_path / "other.key"
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(other_key))
    encrypted = _encrypted(pki.key, tmp_path / "encrypted.key")
    cases = [
        ({"tls_cert": garbage}, f"TLS certificate {garbage} holds no PEM certificate"),
        ({"tls_key": garbage}, f"TLS private key {garbage} holds no usable PEM private key"),
        ({"tls_key": tmp_path}, f"cannot read the TLS private key {tmp_path}"),
        ({"tls_key": other_key}, f"{other_key} does not match the certificate {pki.cert}"),
        ({"tls_key": encrypted}, f"{encrypted} is encrypted"),
        ({"tls_ca": garbage}, f"TLS CA file {garbage} holds no usable PEM certificate"),
    ]
    for changes, message in cases:
        config = make_config(**{"tls_cert": pki.cert, "tls_key": pki.key, **changes})
        with pytest.raises(ValueError, match=message):
            server_context(config)


def test_tls_context_settings(pki: Pki) -> None:
    plain = server_context(make_config(tls_cert=pki.cert, tls_key=pki.key))
    assert plain is not None and plain.verify_mode is ssl.CERT_NONE
    assert plain.minimum_version is ssl.TLSVersion.TLSv1_2
    strict = server_context(make_config(tls_cert=pki.cert, tls_key=pki.key, tls_ca=pki.ca_file))
    assert strict is not None and strict.verify_mode is ssl.CERT_REQUIRED
    assert server_context(make_config()) is None


def test_tls_flags(pki: Pki, tmp_path: Path) -> None:
    args = build_parser().parse_args([
        "--pass", "p", "--dir", str(tmp_path), "--no-tcp", "--tls-cert", str(pki.cert),
        "--tls-key", str(pki.key), "--tls-ca", str(pki.ca_file), "--tls-port", "0"])
    config, _ = config_from_args(args)
    assert (config.tls_cert, config.tls_key, config.tls_ca) == (pki.cert, pki.key, pki.ca_file)
    assert (config.tls_port, config.tcp, config.bind) == (0, False, ("127.0.0.1",))
    defaults, _ = config_from_args(build_parser().parse_args(["--pass", "p", "--dir", str(tmp_path)]))
    assert (defaults.tls_cert, defaults.tls_port, defaults.tcp) == (None, 6380, True)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-key", "k.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-ca", "ca.pem"], "--tls-ca needs --tls-cert and --tls-key"),
        (["--tls-port", "-1", "--tls-cert", "c", "--tls-key", "k"], "port -1 is outside"),
        (["--tls-cert", "/nonexistent/c.pem", "--tls-key", "k.pem"],
         "cannot read the TLS certificate /nonexistent/c.pem: No such file or directory"),
    ],
)
def test_tls_usage_errors_exit_1_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert main(["--pass", "p", "--port", "0", "--dir", str(tmp_path), *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
