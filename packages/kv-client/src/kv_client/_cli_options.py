"""The ``kv`` command's connection, TLS and encryption options, as client arguments.

Kept apart from ``_cli.py``, which parses the command line and runs commands:
this module turns the parsed options into what :class:`Client` and the ciphers
take, and says which option is missing when one is.
"""

from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ._ciphers import AgeCipher, GpgCipher
from ._config import parse_url
from ._encryption import Cipher

PASSWORD_FILE: Final = "kv.pass"
"""The file kv-server generates its password into, inside its data directory (the
server's ``PASSWORD_FILE``; kv-client does not depend on kv-server to import it)."""


class UsageError(Exception):
    """A mistake on the command line; ``kv`` exits with status 2."""


def resolve_password(args: argparse.Namespace) -> str:
    """--pass, else ``KV_PASS``, else the first line of DIR/kv.pass.

    Raises:
        UsageError: none of the three gives a password.
    """
    if args.password:
        return str(args.password)
    if environ := os.environ.get("KV_PASS"):
        return environ
    path: Path = args.dir / PASSWORD_FILE
    try:
        first = path.read_text(encoding="utf-8").partition("\n")[0].rstrip("\r")
    except (OSError, UnicodeDecodeError):
        first = ""
    if not first:
        raise UsageError(f"no password: give --pass, set KV_PASS or point --dir at the "
                         f"server's data directory ({path} is missing, unreadable or empty)")
    return first


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :class:`Client` that the command line asks for.

    Options left out keep the client's defaults. With a URL (--url or KV_URL) and
    no other password, the URL's is used.
    """
    given = {"host": args.host, "port": args.port, "name": args.name, "unix_path": args.unix,
             "url": args.url, "ssl": tls_context(args)}
    options = {"timeout": args.timeout} if args.timeout is not None else {}
    options |= {name: value for name, value in given.items() if value is not None}
    url = args.url or (None if args.host or args.port or args.unix else os.environ.get("KV_URL"))
    if args.password or not url or not parse_url(url).get("password"):
        options["password"] = resolve_password(args)
    return options


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context --tls, --tls-ca, --tls-cert and --tls-key ask for, or None."""
    if not (args.tls or args.tls_ca or args.tls_cert):
        if args.tls_key:
            raise UsageError("--tls-key needs --tls-cert")
        return None
    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
        if args.tls_cert:
            context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the TLS files: {exc}") from None
    return context


def cipher(args: argparse.Namespace) -> Cipher | None:
    """The cipher --encrypt or --decrypt needs: age with --age, else GnuPG."""
    if not (args.encrypt or args.decrypt):
        return None
    if args.age is not None:
        try:
            identity = args.age.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the age identity: {exc}") from None
        lines = [line.strip() for line in identity.splitlines()]
        return AgeCipher(identities=[line for line in lines if line.startswith("AGE-SECRET-KEY-")])
    if args.encrypt and not args.key:
        raise UsageError("--encrypt needs --key (or KV_GPG_KEY): the recipient's public key")
    return GpgCipher(args.key)


@dataclass(frozen=True)
class Crypt:
    """Which way --encrypt and --decrypt apply the cipher: one, the other, or both."""

    cipher: Cipher
    encrypt: bool
    decrypt: bool


def crypt_options(args: argparse.Namespace) -> Crypt | None:
    chosen = cipher(args)
    return None if chosen is None else Crypt(chosen, args.encrypt, args.decrypt)
