"""Throwaway GnuPG keyrings for the encryption tests (unit and integration).

ed25519/cv25519 keys take milliseconds to make, where RSA takes seconds, so each
test module can have keyrings of its own.
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


@dataclass(frozen=True)
class Keyring:
    """A GNUPGHOME holding one secret key, and that key's fingerprint."""

    home: str
    fingerprint: str


@contextmanager
def new_keyring(passphrase: str | None = None) -> Iterator[Keyring]:
    """A throwaway GNUPGHOME with one key; its gpg-agent is stopped on exit."""
    import gnupg  # type: ignore[import-untyped]

    # Under /tmp, not pytest's deep tmp_path: gpg-agent's socket path is limited to
    # about 100 bytes.
    home = tempfile.mkdtemp(prefix="kvgpg-", dir="/tmp")
    try:
        # A pinentry that fails at once: a protected key without its passphrase must
        # fail, never open a prompt on a developer's desktop. The least key-stretching
        # makes protecting a key take milliseconds instead of the calibrated seconds.
        Path(home, "gpg-agent.conf").write_text("pinentry-program /bin/false\ns2k-count 65536\n")
        gpg = gnupg.GPG(gnupghome=home)
        key = gpg.gen_key(gpg.gen_key_input(
            key_type="EDDSA", key_curve="ed25519", subkey_type="ECDH", subkey_curve="cv25519",
            name_email="kv-test@example.invalid", passphrase=passphrase,
            no_protection=passphrase is None))
        assert key.fingerprint, key.stderr
        yield Keyring(home, str(key.fingerprint))
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": home},
                       check=False, capture_output=True, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def gpg_available() -> bool:
    """Whether the gpg binary and python-gnupg are both there (CI installs both)."""
    try:
        import gnupg  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return shutil.which("gpg") is not None
