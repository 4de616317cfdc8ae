"""Client-side encryption without a server: the envelope, the per-command policy, and
the GnuPG and age ciphers against real keys made for this module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyrage  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings

from client_helpers import XOR
from command_strategies import any_call
from gpg_keyrings import Keyring, new_keyring
from kv_client._ciphers import AgeCipher, GpgCipher
from kv_client._encryption import (
    COMPARES_VALUES,
    COMPUTES_ON_VALUES,
    MAGIC,
    DecryptionError,
    EncryptionError,
    decrypt_reply,
    decrypt_value,
    encrypt_arguments,
    encrypt_value,
)
from kv_protocol.commands import BY_NAME, COMMANDS, ArgKind, resolve
from kv_protocol.errors import ArgumentTypeError, KvError, ServerError
from protocol_helpers import same, values

needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="the gpg binary is not installed")


@dataclass
class FixedCipher:
    """Decrypts anything to ``plaintext``: what a forger with the public key could make."""

    plaintext: bytes
    name: str = "xor"

    def encrypt(self, plaintext: bytes) -> bytes:
        return plaintext

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self.plaintext


# -- GnuPG keyrings, one per module: ed25519/cv25519 keys take milliseconds --------

@pytest.fixture(scope="module")
def keyring() -> Iterator[Keyring]:
    with new_keyring() as made:
        yield made


@pytest.fixture(scope="module")
def other_keyring() -> Iterator[Keyring]:
    with new_keyring() as made:
        yield made


# -- the envelope -------------------------------------------------------------------

@given(values)
def test_every_value_round_trips_with_its_type(value: object) -> None:
    assert same(decrypt_value(encrypt_value(value, XOR), XOR), value)


def test_envelope_is_magic_scheme_nul_ciphertext() -> None:
    data = encrypt_value(42, XOR)
    assert data.startswith(b"\x00kvenc1:xor\x00")
    assert XOR.decrypt(data[len(b"\x00kvenc1:xor\x00"):]) == b"\x18\x2a"  # CBOR for 42


def test_a_tuple_comes_back_a_list_as_it_does_without_encryption() -> None:
    assert decrypt_value(encrypt_value((1, "a"), XOR), XOR) == [1, "a"]


def test_values_the_server_would_refuse_are_refused_before_encryption() -> None:
    with pytest.raises(EncryptionError, match="not a storable value"):
        encrypt_value({1, 2}, XOR)


def test_a_cipher_name_must_be_a_valid_scheme() -> None:
    with pytest.raises(EncryptionError, match="not a valid scheme"):
        encrypt_value(1, FixedCipher(b"", name="has\x00nul"))


@pytest.mark.parametrize("data", [b"plain", MAGIC, MAGIC + b"xor", MAGIC + b"\x00ct", MAGIC + b"X!\x00ct"])
def test_malformed_envelopes_are_refused(data: bytes) -> None:
    with pytest.raises(DecryptionError, match=r"envelope|malformed"):
        decrypt_value(data, XOR)


def test_another_scheme_is_named_in_the_error() -> None:
    data = encrypt_value(1, FixedCipher(b"", name="gpg"))
    with pytest.raises(DecryptionError, match="scheme 'gpg', but the cipher is 'xor'"):
        decrypt_value(data, XOR)


@pytest.mark.parametrize("plaintext", [b"", b"\x01\x02", b"\xc1\x00", b"\x18"])
def test_a_plaintext_that_is_not_one_value_is_refused(plaintext: bytes) -> None:
    # Empty, two items, a tag (a datetime), a truncated item.
    cipher = FixedCipher(plaintext)
    with pytest.raises(DecryptionError, match=r"not .*kv value"):
        decrypt_value(encrypt_value(0, cipher), cipher)


def test_errors_are_kv_errors() -> None:
    assert issubclass(DecryptionError, EncryptionError)
    assert issubclass(EncryptionError, KvError)


# -- which arguments are encrypted ------------------------------------------------

def _plain(argv: list[object]) -> list[object]:
    return [decrypt_value(a, XOR) if isinstance(a, bytes) and a.startswith(MAGIC) else a for a in argv]


def _encrypted_positions(argv: list[object]) -> list[int]:
    return [i for i, a in enumerate(argv) if isinstance(a, bytes) and a.startswith(MAGIC)]


@pytest.mark.parametrize(("argv", "positions"), [
    (["SET", "k", 42, "EX", 10], [2]),
    (["set", b"k", [1, {"a": None}], "NX", "GET"], [2]),
    (["RPUSH", "q", "a", b"b", 3.5], [2, 3, 4]),
    (["HSET", "h", "f1", 1, b"f2", "two"], [3, 5]),
    (["MSET", "k1", True, "k2", None], [2, 4]),
    (["SETEX", "k", 10, "v"], [3]),
    (["LSET", "q", -1, "v"], [3]),
    (["ECHO", "message"], [1]),
    (["PING", "message"], [1]),
    (["PING"], []),
    (["GET", "k"], []),
    (["HGET", "h", "f"], []),
    (["CLIENT", "SETNAME", "conn"], []),
    (["NOSUCHCOMMAND", "k", "secret?"], []),
    ([], []),
])
def test_exactly_the_stored_values_are_encrypted(argv: list[object], positions: list[int]) -> None:
    encrypted = encrypt_arguments(argv, XOR)
    assert _encrypted_positions(encrypted) == positions
    assert _plain(encrypted) == argv
    assert encrypted is not argv


@given(any_call)
def test_any_well_typed_call_encrypts_its_value_arguments_and_nothing_else(argv: list[object]) -> None:
    spec = resolve(argv)
    assert spec is not None
    if spec.name in COMPARES_VALUES | COMPUTES_ON_VALUES:
        with pytest.raises(EncryptionError, match="not available with client-side encryption"):
            encrypt_arguments(argv, XOR)
        return
    if not spec.check_arity(len(argv) - spec.words):  # the strategy repeats options
        with pytest.raises(ServerError, match="wrong number of arguments"):
            encrypt_arguments(argv, XOR)
        return
    encrypted = encrypt_arguments(argv, XOR)
    for index, (before, after) in enumerate(zip(argv, encrypted, strict=True)):
        argc = len(argv) - spec.words
        if index >= spec.words and spec.arg_at(index - spec.words, argc).kind is ArgKind.VALUE:
            assert same(decrypt_value(after, XOR), before)  # type: ignore[arg-type]
        else:
            assert after is before


@pytest.mark.parametrize("argv", [
    ["LPOS", "q", "a"], ["LREM", "q", 0, "a"], ["LINSERT", "q", "BEFORE", "a", "b"],
])
def test_commands_that_compare_values_are_refused(argv: list[object]) -> None:
    with pytest.raises(EncryptionError, match="compares values"):
        encrypt_arguments(argv, XOR)


@pytest.mark.parametrize("argv", [
    ["INCR", "n"], ["INCRBYFLOAT", "n", 1.5], ["HINCRBY", "h", "f", 1], ["APPEND", "k", "x"],
    ["SETRANGE", "k", 0, "x"], ["GETRANGE", "k", 0, -1], ["STRLEN", "k"], ["HSTRLEN", "h", "f"],
])
def test_commands_that_compute_on_values_are_refused(argv: list[object]) -> None:
    with pytest.raises(EncryptionError, match="computes on a stored value"):
        encrypt_arguments(argv, XOR)


def test_a_bad_call_fails_as_the_server_would_without_sending_its_plaintext() -> None:
    with pytest.raises(ServerError, match="wrong number of arguments for 'getset'"):
        encrypt_arguments(["GETSET", "k", "v", "extra"], XOR)
    with pytest.raises(ArgumentTypeError, match="'set' argument 'value'"):
        encrypt_arguments(["SET", "k", {1, 2}], XOR)


def test_the_refused_commands_exist_and_options_hold_no_values() -> None:
    # The policy is written as command names, and encrypt_arguments reads a
    # command's options as one argument: both hold only while the table agrees.
    assert BY_NAME.keys() >= COMPARES_VALUES | COMPUTES_ON_VALUES
    for spec in COMMANDS:
        if spec.options is not None:
            assert all(o.arg is None or o.arg.kind is not ArgKind.VALUE for o in spec.options.options)


def test_commands_whose_values_are_encrypted_are_the_reviewed_ones() -> None:
    # A new command taking a value must be classified: stored (encrypted), compared
    # or computed on (refused). Update this list, or the refused sets, when one fails.
    taking_values = {spec.name for spec in COMMANDS
                     if any(a.kind is ArgKind.VALUE for a in spec.positional + spec.tail)}
    assert taking_values - COMPARES_VALUES == {
        "PING", "ECHO", "SET", "GETSET", "SETNX", "SETEX", "PSETEX", "MSET",
        "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LSET", "HSET", "HSETNX", "PUBLISH",
    }


# -- replies ----------------------------------------------------------------------

def test_replies_are_walked_and_only_envelopes_are_decrypted() -> None:
    def enc(value: object) -> bytes:
        return encrypt_value(value, XOR)

    reply = [0, b"plain", enc(1), [enc([1, 2]), 3, None], {"f": enc("x"), b"g": b"raw", "n": [enc(2.5)]}]
    assert decrypt_reply(["LRANGE", "q", 0, -1], reply, XOR) == [
        0, b"plain", 1, [[1, 2], 3, None], {"f": "x", b"g": b"raw", "n": [2.5]}]


@pytest.mark.parametrize("argv", [["KEYS", "*"], ["SCAN", 0], ["RANDOMKEY"], ["HKEYS", "h"],
                                  ["HFIND", "h", "x"], ["NOSUCHCOMMAND"], ["CLIENT", "LIST"]])
def test_replies_that_name_keys_or_fields_are_never_decrypted(argv: list[object]) -> None:
    # A key named like an envelope is a name: decrypting it would fail, or show
    # whatever plaintext its creator chose as if it were the key.
    name = encrypt_value("looks like a value", XOR)
    assert decrypt_reply(argv, [name], XOR) == [name]


@pytest.mark.parametrize("argv", [["GET", "k"], ["MGET", "a"], ["LPOP", "q"], ["HGETALL", "h"],
                                  ["HVALS", "h"], ["ECHO", "m"], ["GETDEL", "k"], ["LMOVE", "a", "b"]])
def test_replies_that_hold_values_are_decrypted(argv: list[object]) -> None:
    assert decrypt_reply(argv, [encrypt_value(7, XOR)], XOR) == [7]


def test_a_decrypted_value_is_not_decrypted_again() -> None:
    inner = encrypt_value("secret", XOR)
    assert decrypt_reply(["GET", "k"], encrypt_value(inner, XOR), XOR) == inner


def test_a_reply_from_another_scheme_names_both() -> None:
    with pytest.raises(DecryptionError, match="'gpg', but the cipher is 'xor'"):
        decrypt_reply(["MGET", "k"], [encrypt_value(1, FixedCipher(b"", name="gpg"))], XOR)


def test_error_instances_and_other_objects_pass_through() -> None:
    error = ServerError("boom")
    assert decrypt_reply(["MGET", "a", "b", "c"], [error, "text", 7], XOR) == [error, "text", 7]


# -- GnuPG ------------------------------------------------------------------------

@needs_gpg
@settings(max_examples=20, deadline=None)  # each value is two gpg runs
@given(values)
def test_gpg_round_trip(keyring: Keyring, value: object) -> None:
    cipher = GpgCipher(keyring.fingerprint, gnupghome=keyring.home)
    assert same(decrypt_value(encrypt_value(value, cipher), cipher), value)


@needs_gpg
def test_gpg_ciphertext_is_binary_and_randomised(keyring: Keyring) -> None:
    cipher = GpgCipher([keyring.fingerprint], gnupghome=Path(keyring.home))
    first, second = (encrypt_value("same", cipher) for _ in range(2))
    assert first.startswith(b"\x00kvenc1:gpg\x00")
    assert b"BEGIN PGP" not in first
    assert first != second


@needs_gpg
def test_gpg_wrong_keyring_cannot_decrypt(keyring: Keyring, other_keyring: Keyring) -> None:
    data = encrypt_value("secret", GpgCipher(keyring.fingerprint, gnupghome=keyring.home))
    with pytest.raises(DecryptionError, match="No secret key"):
        decrypt_value(data, GpgCipher(gnupghome=other_keyring.home))


@needs_gpg
def test_gpg_tampered_ciphertext_is_refused(keyring: Keyring) -> None:
    # gpg writes the forged plaintext before it reports the failed integrity check.
    cipher = GpgCipher(keyring.fingerprint, gnupghome=keyring.home)
    data = bytearray(encrypt_value("secret", cipher))
    data[-1] ^= 1
    with pytest.raises(DecryptionError, match="gpg decryption failed"):
        decrypt_value(bytes(data), cipher)


@needs_gpg
def test_gpg_unencrypted_literal_data_is_refused(keyring: Keyring) -> None:
    # `gpg --store` makes a literal packet that `gpg --decrypt` prints as it is.
    literal = subprocess.run(["gpg", "--homedir", keyring.home, "--batch", "--store", "-z", "0"],
                             input=b"\x18\x2a", capture_output=True, check=True).stdout
    with pytest.raises(DecryptionError):
        decrypt_value(b"\x00kvenc1:gpg\x00" + literal, GpgCipher(gnupghome=keyring.home))


@needs_gpg
def test_gpg_recipients_are_required_and_must_be_in_the_keyring(keyring: Keyring) -> None:
    with pytest.raises(EncryptionError, match="needs recipients"):
        encrypt_value(1, GpgCipher(gnupghome=keyring.home))
    with pytest.raises(EncryptionError, match=r"invalid recipient.*No public key"):
        encrypt_value(1, GpgCipher("nobody@example.invalid", gnupghome=keyring.home))


@needs_gpg
def test_gpg_protected_key_needs_its_passphrase() -> None:
    with new_keyring(passphrase="open sesame") as protected:
        data = encrypt_value([1, "x"], GpgCipher(protected.fingerprint, gnupghome=protected.home))
        # Without, then with a wrong one, before the right one: gpg-agent caches it.
        with pytest.raises(DecryptionError, match="pass passphrase="):
            decrypt_value(data, GpgCipher(gnupghome=protected.home))
        with pytest.raises(DecryptionError, match="Bad passphrase"):
            decrypt_value(data, GpgCipher(gnupghome=protected.home, passphrase="wrong"))
        cipher = GpgCipher(gnupghome=protected.home, passphrase="open sesame")
        assert decrypt_value(data, cipher) == [1, "x"]


def test_gpg_setup_errors_are_encryption_errors() -> None:
    with pytest.raises(EncryptionError, match="cannot use gpg"):
        GpgCipher(gpg_binary="/nonexistent/gpg")
    with pytest.raises(EncryptionError, match="line break"):
        GpgCipher(passphrase="two\nlines")


# -- age --------------------------------------------------------------------------

SECRET = str(pyrage.x25519.Identity.generate())
OTHER_SECRET = str(pyrage.x25519.Identity.generate())
PUBLIC = str(pyrage.x25519.Identity.from_str(SECRET).to_public())


@given(values)
def test_age_round_trip(value: object) -> None:
    cipher = AgeCipher([PUBLIC], [SECRET])
    assert same(decrypt_value(encrypt_value(value, cipher), cipher), value)


def test_age_identity_alone_encrypts_to_itself_and_recipient_alone_cannot_decrypt() -> None:
    data = encrypt_value("x", AgeCipher(identities=SECRET))
    assert data.startswith(b"\x00kvenc1:age\x00")
    assert decrypt_value(data, AgeCipher(identities=[SECRET])) == "x"
    with pytest.raises(DecryptionError, match="needs an identity"):
        decrypt_value(encrypt_value("x", AgeCipher(PUBLIC)), AgeCipher(PUBLIC))


def test_age_wrong_identity_and_tampering_are_refused() -> None:
    data = bytearray(encrypt_value("secret", AgeCipher(PUBLIC)))
    with pytest.raises(DecryptionError, match="age decryption failed"):
        decrypt_value(bytes(data), AgeCipher(identities=[OTHER_SECRET]))
    data[-1] ^= 1
    with pytest.raises(DecryptionError, match="age decryption failed"):
        decrypt_value(bytes(data), AgeCipher(identities=[SECRET]))


def test_age_bad_keys_are_refused_without_quoting_secrets() -> None:
    with pytest.raises(EncryptionError, match="invalid age recipient"):
        AgeCipher(["age1notakey"])
    with pytest.raises(EncryptionError, match="invalid age identity") as raised:
        AgeCipher(identities=[SECRET[:-2]])
    assert SECRET[:-2] not in str(raised.value)
    with pytest.raises(EncryptionError, match="needs a recipient"):
        encrypt_value(1, AgeCipher())


def test_age_and_gpg_values_do_not_mix() -> None:
    data = encrypt_value(1, AgeCipher(PUBLIC))
    with pytest.raises(DecryptionError, match="scheme 'age', but the cipher is 'gpg'"):
        decrypt_value(data, FixedCipher(b"", name="gpg"))


# -- the extras are optional --------------------------------------------------------

@pytest.mark.parametrize(("module", "make", "extra"), [
    ("gnupg", lambda: GpgCipher("x"), "gpg"),
    ("pyrage", lambda: AgeCipher(PUBLIC), "age"),
])
def test_a_missing_extra_says_which_to_install(
        monkeypatch: pytest.MonkeyPatch, module: str, make: Callable[[], object], extra: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(EncryptionError, match=rf"pip install 'kv-client\[{extra}\]'"):
        make()
