"""Throwaway keys and certificates for the integration tests: GnuPG keyrings and a TLS PKI.

The keyring helper is the minimal part of packages/kv-client/tests/test_encryption.py's
(ed25519/cv25519 keys take milliseconds to make, where RSA takes seconds), so the
end-to-end encryption tests stay fast; the TLS helper writes trustme's certificates
where kv-server's ``--tls-*`` flags can read them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from integration_helpers import TlsFiles


@dataclass(frozen=True)
class Keyring:
    """A GNUPGHOME holding one secret key, and that key's fingerprint."""

    home: str
    fingerprint: str


@contextmanager
def new_keyring() -> Iterator[Keyring]:
    """A throwaway GNUPGHOME with one unprotected key; its gpg-agent is stopped on exit."""
    import gnupg  # type: ignore[import-untyped]

    # Under /tmp, not pytest's deep tmp_path: gpg-agent's socket path is limited to
    # about 100 bytes.
    home = tempfile.mkdtemp(prefix="kvgpg-", dir="/tmp")
    try:
        # A pinentry that fails at once: nothing here may ever open a prompt.
        Path(home, "gpg-agent.conf").write_text("pinentry-program /bin/false\n")
        gpg = gnupg.GPG(gnupghome=home)
        key = gpg.gen_key(gpg.gen_key_input(
            key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH", subkey_curve="cv25519",
            name_email="kv-integration@example.invalid", no_protection=True))
        assert key.fingerprint, key.stderr
        yield Keyring(home, str(key.fingerprint))
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": home},
                       check=False, capture_output=True, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def gpg_available() -> bool:
    """Whether the gpg binary and python-gnupg are both there (CI installs both)."""
    try:
        import gnupg  # noqa: F401
    except ImportError:
        return False
    return shutil.which("gpg") is not None


def write_tls_files(ca: trustme.CA, where: Path, *names: str) -> tuple[TlsFiles, Path]:
    """A server certificate for ``names`` signed by ``ca``, and the CA certificate's file.

    The CA file is for clients to trust; it is not put in ``TlsFiles.ca``, which
    would make the server demand client certificates.
    """
    where.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert(*names)
    files = TlsFiles(where / "server.pem", where / "server.key")
    issued.cert_chain_pems[0].write_to_path(str(files.cert))
    issued.private_key_pem.write_to_path(str(files.key))
    ca_file = where / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return files, ca_file
