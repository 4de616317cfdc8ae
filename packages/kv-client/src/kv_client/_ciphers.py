"""The ciphers kv offers: GnuPG (the original system's choice) and age.

Both wrap a well-reviewed tool instead of writing crypto here, and both are
randomised and authenticated, as :class:`~kv_client._encryption.Cipher` requires:
GnuPG's integrity check (MDC) and age's AEAD payload make a tampered value fail to
decrypt instead of decrypting to something else.

Their libraries are extras, imported when a cipher is made, so kv_client itself
works without them: ``pip install 'kv-client[gpg]'`` or ``'kv-client[age]'``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from ._encryption import DecryptionError, EncryptionError


def _missing_extra(cipher: str, library: str, extra: str) -> EncryptionError:
    return EncryptionError(f"{cipher} needs {library}: pip install 'kv-client[{extra}]'")


def _as_tuple(names: str | Sequence[str] | None) -> tuple[str, ...]:
    """One name or several; a lone string is one name, not a sequence of letters."""
    if names is None:
        return ()
    return (names,) if isinstance(names, str) else tuple(names)


class GpgCipher:
    """GnuPG through python-gnupg and the gpg binary; keys stay in a GnuPG keyring.

    Encrypting needs ``recipients``: public keys named by fingerprint (best), key id
    or email. Decrypting uses the secret key in the keyring that the value was
    encrypted to, unlocked with ``passphrase`` when it is protected (or by a
    gpg-agent that has it cached). ``gnupghome`` defaults to GnuPG's own (``~/.gnupg``
    or ``$GNUPGHOME``).

    Encryption trusts the named keys (``--trust-model always``): GnuPG otherwise
    refuses a key nobody certified in its web of trust, which keyrings kept for a
    service rarely do, and the caller naming a key explicitly is the trust decision,
    as it is with age. So that no other key is trusted that way, lookup is local only
    (``--no-auto-key-locate``): gpg never fetches a key from WKD or a keyserver for
    an email. Prefer fingerprints: an email matches any imported key that claims it.

    Making one raises :class:`EncryptionError` when python-gnupg is not installed,
    gpg cannot be run, or the passphrase holds a line break (gpg reads it as one line).
    """

    name = "gpg"

    def __init__(
        self,
        recipients: str | Sequence[str] | None = None,
        *,
        gnupghome: str | Path | None = None,
        passphrase: str | None = None,
        gpg_binary: str = "gpg",
    ) -> None:
        try:
            import gnupg  # type: ignore[import-untyped]
        except ImportError as exc:
            raise _missing_extra("GpgCipher", "python-gnupg", "gpg") from exc
        if passphrase is not None and ("\n" in passphrase or "\r" in passphrase):
            raise EncryptionError("a gpg passphrase cannot hold a line break")
        try:
            self._gpg = gnupg.GPG(gpgbinary=gpg_binary,
                                  gnupghome=None if gnupghome is None else os.fspath(gnupghome))
        except (OSError, ValueError) as exc:
            raise EncryptionError(f"cannot use gpg: {exc}") from exc
        self._recipients = _as_tuple(recipients)
        self._passphrase = passphrase

    def encrypt(self, plaintext: bytes) -> bytes:
        if not self._recipients:
            raise EncryptionError("gpg needs recipients to encrypt: pass the fingerprint, key id "
                                  "or email of a public key in the keyring")
        result = self._gpg.encrypt(plaintext, list(self._recipients), armor=False,
                                   always_trust=True, extra_args=["--no-auto-key-locate"])
        if not result.ok:
            raise EncryptionError(_gpg_failure("encryption", result.status, result.stderr))
        return bytes(result.data)

    def decrypt(self, ciphertext: bytes) -> bytes:
        result = self._gpg.decrypt(ciphertext, passphrase=self._passphrase)
        # ``ok`` is the only verdict: on a failed integrity check gpg has already
        # written the (forged) plaintext, and on an unencrypted literal packet it
        # writes its contents without decrypting anything.
        if not result.ok:
            message = _gpg_failure("decryption", result.status, result.stderr)
            if self._passphrase is None and "pkdecrypt_failed" in result.stderr:
                message += "; if the secret key is protected, pass passphrase=..."
            raise DecryptionError(message)
        return bytes(result.data)


# gpg's last few human-readable lines say why ("Bad passphrase", "encrypted message
# has been manipulated"); its status word alone ("decryption failed") does not.
_GPG_DETAIL_LINES = 2


def _gpg_failure(operation: str, status: str | None, stderr: str) -> str:
    details = [line.removeprefix("gpg: ") for line in stderr.splitlines() if line.startswith("gpg: ")]
    message = f"gpg {operation} failed: {status or 'no status'}"
    if details:
        message += f" ({'; '.join(details[-_GPG_DETAIL_LINES:])})"
    return message


class AgeCipher:
    """age (age-encryption.org) through pyrage: X25519 keys given as strings, no keyring.

    ``recipients`` are public keys (``age1...``) to encrypt to; ``identities`` are
    secret keys (``AGE-SECRET-KEY-1...``) to decrypt with. Without recipients, values
    are encrypted to the identities' own public keys, as ``age -e -i`` does, so one
    identity is enough to write and read.

    Making one raises :class:`EncryptionError` when pyrage is not installed or a key
    is malformed; the message never quotes a secret key.
    """

    name = "age"

    def __init__(self, recipients: str | Sequence[str] = (),
                 identities: str | Sequence[str] = ()) -> None:
        try:
            import pyrage  # type: ignore[import-untyped]
        except ImportError as exc:
            raise _missing_extra("AgeCipher", "pyrage", "age") from exc
        self._pyrage: ModuleType = pyrage
        try:
            self._identities = tuple(pyrage.x25519.Identity.from_str(identity)
                                     for identity in _as_tuple(identities))
        except pyrage.IdentityError as exc:
            raise EncryptionError(f"invalid age identity: {exc}") from exc
        recipients = _as_tuple(recipients)
        try:
            self._recipients = tuple(pyrage.x25519.Recipient.from_str(r) for r in recipients)
        except pyrage.RecipientError as exc:
            raise EncryptionError(f"invalid age recipient among {recipients}: {exc}") from exc
        if not self._recipients:
            self._recipients = tuple(identity.to_public() for identity in self._identities)

    def encrypt(self, plaintext: bytes) -> bytes:
        if not self._recipients:
            raise EncryptionError("age needs a recipient (age1...) or an identity to encrypt")
        try:
            return bytes(self._pyrage.encrypt(plaintext, list(self._recipients)))
        except self._pyrage.EncryptError as exc:
            raise EncryptionError(f"age encryption failed: {exc}") from exc

    def decrypt(self, ciphertext: bytes) -> bytes:
        if not self._identities:
            raise DecryptionError("age needs an identity (AGE-SECRET-KEY-1...) to decrypt")
        try:
            return bytes(self._pyrage.decrypt(ciphertext, list(self._identities)))
        except self._pyrage.DecryptError as exc:
            raise DecryptionError(f"age decryption failed: {exc}") from exc
