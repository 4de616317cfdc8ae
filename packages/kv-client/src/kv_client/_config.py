"""Where and how a client connects: arguments, a URL, the environment.

One precedence for every client and the CLI: an argument given to the client
wins, then the URL (``url=`` or, when neither a URL nor an address is given, the
``KV_URL`` variable), then the defaults; the password comes from the argument,
the URL, or ``KV_PASS``. URLs, as redis-py's::

    kv://[:password@]host[:port][?name=N&timeout=S&connect_timeout=S]
    kvs://...                         TLS, the server's certificate verified
    kvs://host?ca=/path/ca.pem        ... against this CA file
    unix:///path/to/kv.sock[?password=P&name=N]

Passwords and names in a URL are percent-decoded (``%40`` for ``@``).
"""

from __future__ import annotations

import os
import ssl as _ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self, TypedDict, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from ._encryption import Cipher

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 6378
# Connecting includes the handshake, whose key derivation takes ~0.2 s the first time.
DEFAULT_CONNECT_TIMEOUT_S: Final = 10.0
# Enough for a busy threaded or async program; the server's limit is far higher.
DEFAULT_MAX_CONNECTIONS: Final = 50
# An idle pooled connection older than this is PINGed before it is used again.
DEFAULT_HEALTH_CHECK_S: Final = 30.0
SCHEMES: Final = ("kv", "kvs", "unix")


class ClientOptions(TypedDict, total=False):
    """The keyword arguments every client takes (``Client``, ``AsyncClient``).

    Attributes:
        url: ``kv://``, ``kvs://`` or ``unix://`` URL (see the module docstring).
        password: the server's password; defaults to the URL's, then ``KV_PASS``.
        name: a name for the connections, shown by CLIENT LIST.
        unix_path: connect to this Unix socket instead of TCP.
        ssl: TLS: an ``ssl.SSLContext``, or True for the system's default one (the
            server's certificate and host name are verified either way).
        server_hostname: the name the certificate must carry (default: the host).
        timeout: seconds to wait for a reply (None waits forever).
        connect_timeout: seconds to connect and complete the handshake.
        max_connections: the pool's bound; a command waits for a free connection.
        pool_timeout: seconds to wait for a free connection (None waits forever).
        health_check_interval: a connection idle longer is PINGed before reuse.
        retry_writes: after a broken connection, send a write again on a new one.
            Off by default: the write may have run, and only the caller knows
            whether running it twice is safe. Read-only commands are always
            retried once, since running them twice changes nothing.
        encryption: a cipher (``GpgCipher``, ``AgeCipher``...) for the values.
    """

    url: str
    password: str
    name: str
    unix_path: str | Path
    ssl: _ssl.SSLContext | bool
    server_hostname: str
    timeout: float | None
    connect_timeout: float | None
    max_connections: int
    pool_timeout: float | None
    health_check_interval: float
    retry_writes: bool
    encryption: Cipher


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """A resolved configuration. The password is never shown in ``repr``."""

    password: str = field(repr=False)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    unix_path: Path | None = None
    name: str = ""
    connect_timeout_s: float | None = DEFAULT_CONNECT_TIMEOUT_S
    timeout_s: float | None = None
    ssl: _ssl.SSLContext | None = None
    server_hostname: str | None = None
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    pool_timeout_s: float | None = None
    health_check_s: float = DEFAULT_HEALTH_CHECK_S
    retry_writes: bool = False
    encryption: Cipher | None = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "timeout_s", "pool_timeout_s"):
            seconds = getattr(self, name)
            if seconds is not None and not seconds > 0:
                raise ValueError(f"{name.removesuffix('_s')} must be a number of seconds > 0, "
                                 f"or None to wait for ever (got {seconds!r})")
        if not self.health_check_s >= 0:
            raise ValueError(f"health_check_interval must be >= 0 seconds (got {self.health_check_s!r})")
        if type(self.max_connections) is not int or self.max_connections < 1:
            raise ValueError(f"max_connections must be a whole number >= 1 (got {self.max_connections!r})")

    @property
    def health_check_timeout_s(self) -> float:
        """How long a health-check PING may take: a connection that cannot answer a
        PING in the time allowed to connect is replaced."""
        return self.connect_timeout_s or DEFAULT_CONNECT_TIMEOUT_S

    @classmethod
    def create(cls, password: str | None, **options: object) -> ClientConfig:
        """A config; without a password, the one in the ``KV_PASS`` environment variable."""
        password = password if password is not None else os.environ.get("KV_PASS")
        if not password:
            raise ValueError("no password: pass password=... or set KV_PASS")
        return cls(password, **options)  # type: ignore[arg-type]

    @classmethod
    def resolve(cls, host: str | None = None, port: int | None = None,
                **given: Unpack[ClientOptions]) -> ClientConfig:
        """The config from a client's arguments, its URL and the environment."""
        options: dict[str, object] = dict(given)
        url = options.pop("url", None)
        if url is None and host is None and port is None and "unix_path" not in options:
            url = os.environ.get("KV_URL") or None
        merged = parse_url(str(url)) if url is not None else {}
        if options.get("ssl") is True and isinstance(merged.get("ssl"), _ssl.SSLContext):
            del options["ssl"]  # TLS on, with the URL's own CA
        merged.update(options)
        if host is not None:
            merged["host"] = host
        if port is not None:
            merged["port"] = port
        return cls.create(merged.pop("password", None), **_config_fields(merged))  # type: ignore[arg-type]

    @property
    def address(self) -> str:
        if self.unix_path:
            return f"unix:{self.unix_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls:' if self.ssl else ''}{host}:{self.port}"


def _config_fields(options: dict[str, object]) -> dict[str, object]:
    """ClientOptions' user-facing names as ClientConfig's fields."""
    renamed = {"timeout": "timeout_s", "connect_timeout": "connect_timeout_s",
               "pool_timeout": "pool_timeout_s", "health_check_interval": "health_check_s"}
    fields = {renamed.get(name, name): value for name, value in options.items()}
    if fields.get("unix_path") is not None:
        fields["unix_path"] = Path(str(fields["unix_path"]))
    tls = fields.get("ssl")
    if tls is True:
        fields["ssl"] = _ssl.create_default_context()
    elif tls is False:
        fields["ssl"] = None
    return fields


def parse_url(url: str) -> dict[str, object]:
    """The ClientOptions a ``kv://``, ``kvs://`` or ``unix://`` URL gives.

    Raises:
        ValueError: another scheme, a bad port, or an unknown query parameter.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{_redacted(url)}: the scheme must be one of "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    options: dict[str, object] = {}
    if parts.password is not None:
        options["password"] = unquote(parts.password)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{_redacted(url)}: a unix:// URL needs the socket's path")
        options["unix_path"] = unquote(parts.path)
    else:
        if parts.hostname:
            options["host"] = parts.hostname
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"{_redacted(url)}: the port is not a number from 0 to 65535") from None
        if port is not None:
            options["port"] = port
    query = parse_qs(parts.query, keep_blank_values=True)
    for name, values in query.items():
        value = values[-1]
        if name in ("timeout", "connect_timeout", "pool_timeout"):
            options[name] = _seconds(url, name, value, none_allowed=True)
        elif name == "health_check_interval":
            options[name] = _seconds(url, name, value, none_allowed=False)
        elif name in ("name", "password"):
            options[name] = value
        elif name == "max_connections":
            options[name] = _count(url, name, value)
        elif name == "ca" and parts.scheme == "kvs":
            try:
                options["ssl"] = _ssl.create_default_context(cafile=value)
            except (OSError, _ssl.SSLError) as exc:
                raise ValueError(f"{_redacted(url)}: cannot load the CA file: {exc}") from None
        else:
            raise ValueError(f"{_redacted(url)}: unknown parameter {name!r}")
    if parts.scheme == "kvs":
        options.setdefault("ssl", True)
    return options


def _seconds(url: str, name: str, value: str, *, none_allowed: bool) -> float | None:
    if none_allowed and value.lower() in ("", "none"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 or (seconds == 0 and not none_allowed)):
        raise ValueError(f"{_redacted(url)}: {name} must be seconds (a number > 0)"
                         + (" or none" if none_allowed else ""))
    return seconds


def _count(url: str, name: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{_redacted(url)}: {name} must be a whole number >= 1")
    return int(value)


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.password is not None:
        netloc = f":***@{netloc}"
    query = "..." if "password=" in parts.query else parts.query
    return parts._replace(netloc=netloc, query=query).geturl()


class ClientBase:
    """What :class:`Client` and :class:`AsyncClient` are both made from: a configuration."""

    def __init__(self, host: str | None = None, port: int | None = None,
                 **options: Unpack[ClientOptions]) -> None:
        self.config = ClientConfig.resolve(host, port, **options)

    @classmethod
    def from_url(cls, url: str, /, **options: Unpack[ClientOptions]) -> Self:
        """A client for ``kv://[:password@]host[:port]``, ``kvs://...`` or ``unix:///path``."""
        options["url"] = url
        return cls(**options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.config.address}>"
