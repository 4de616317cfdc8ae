"""TLS for kv-server: the server's SSLContext, built once at start-up.

How TLS connections are served (``_server.py``): each TLS listener is a
``trio.SSLListener`` around a plain TCP listener. Its ``accept`` wraps the socket
in a ``trio.SSLStream`` without doing any I/O, so the TLS handshake happens in
the connection's own task, on its first read, inside the kv handshake's deadline
(``_connection._handshake``). A peer that never finishes TLS is therefore closed
after ``handshake_timeout_s`` like one that never finishes the kv handshake, and
it never holds up the accept loop. After the handshake the kv protocol runs
unchanged over the stream (``StreamTransport``); the plain listeners keep their
faster socket loop.

The files are checked here one by one so that a bad one is named: the ssl
module's own errors ("PEM lib", "No such file or directory") do not say which.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import NoReturn

from ._config import ServerConfig

# TLS 1.0 and 1.1 are deprecated (RFC 8996); every supported Python and OpenSSL
# speaks 1.2.
MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2


def server_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The context for the TLS listeners, or None when TLS is off.

    Error handling:
        A file that cannot be read, or does not hold what it should, raises
        ``ValueError`` whose message names the file, before anything is opened.
    """
    cert, key, ca = config.tls_cert, config.tls_key, config.tls_ca
    if cert is None or key is None:
        return None
    _check_readable(cert, "certificate")
    _check_readable(key, "private key")
    if ca is not None:
        _check_readable(ca, "CA file")
    _check_certificate(cert)
    try:
        # cafile here, not load_verify_locations later: without one the default
        # context also trusts the system's CAs, which would then vouch for clients.
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    except ssl.SSLError as exc:
        raise ValueError(f"TLS CA file {ca} holds no usable PEM certificate ({exc.reason})") from exc
    context.minimum_version = MINIMUM_TLS_VERSION
    if ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKeyError:
        raise ValueError(f"TLS private key {key} is encrypted; kv-server needs an unencrypted "
                         "key (mode 0600) as it cannot prompt for a passphrase") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            message = f"TLS private key {key} does not match the certificate {cert}"
        else:
            message = f"TLS private key {key} holds no usable PEM private key"
        raise ValueError(message) from exc
    return context


class _EncryptedKeyError(Exception):
    """Raised from the passphrase callback, so that OpenSSL never prompts on the tty."""


def _no_passphrase() -> NoReturn:
    raise _EncryptedKeyError


def _check_readable(path: Path, what: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot read the TLS {what} {path}: {exc.strerror}") from exc


def _check_certificate(path: Path) -> None:
    """Parse the certificate alone, so that a bad one is not blamed on the key."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"TLS certificate {path} holds no PEM certificate ({exc.reason})") from exc
