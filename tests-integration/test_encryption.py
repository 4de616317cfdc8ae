"""Client-side encryption end to end: values leave the client encrypted and stay so.

The unit tests (packages/kv-client/tests/test_encryption.py) check the envelope and
the per-command policy without a server. These check the promise users rely on:
through a real kv-server, its AOF and its snapshot, and across a restart, the
server only ever holds ciphertext, while the client that has the key gets every
value back with its Python type. GnuPG and age run the same tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpg_keyrings import Keyring, gpg_available, new_keyring
from integration_helpers import ServerProcess, start_server
from kv_client import (
    AgeCipher,
    Cipher,
    Client,
    DecryptionError,
    EncryptionError,
    GpgCipher,
)
from kv_protocol.values import Value
from protocol_helpers import same

SECRETS = ("secret-set", "secret-typed", "secret-bytes", "secret-list", "secret-hash",
           "secret-mset-1", "secret-mset-2", "secret-after-save")
"""Every plaintext marker written encrypted; none may ever reach the server."""
CONTROL = "control-written-in-plaintext"
"""Written without encryption, so that searching the files for text is shown to work."""

EXPECTED: dict[str, Value] = {
    "enc:set": "secret-set",
    "enc:typed": {"secret-typed": [1, 2.5, True, None, b"secret-bytes"]},
    "enc:m1": "secret-mset-1",
    "enc:m2": b"secret-mset-2",
}
EXPECTED_LIST: list[Value] = ["secret-list", 42, 4.0]
EXPECTED_HASH: dict[str | bytes, Value] = {"field": "secret-hash", "count": 7}


def write_everything(kv: Client) -> None:
    """One write of each kind that stores a value: SET, RPUSH, HSET, MSET."""
    assert kv.set("enc:set", EXPECTED["enc:set"]) is True
    kv.set("enc:typed", EXPECTED["enc:typed"])
    assert kv.rpush("enc:list", *EXPECTED_LIST) == len(EXPECTED_LIST)
    assert kv.hset("enc:hash", EXPECTED_HASH) == len(EXPECTED_HASH)
    assert kv.mset({"enc:m1": EXPECTED["enc:m1"], "enc:m2": EXPECTED["enc:m2"]}) is True


def assert_everything_reads_back(kv: Client) -> None:
    """The keyed client gets each value with its type (an int stays an int, bytes stay bytes)."""
    for key, value in EXPECTED.items():
        assert same(kv.get(key), value), key
    assert same(kv.mget("enc:m1", "enc:m2"), [EXPECTED["enc:m1"], EXPECTED["enc:m2"]])
    assert same(kv.lrange("enc:list", 0, -1), EXPECTED_LIST)
    assert same(kv.hgetall("enc:hash"), EXPECTED_HASH)
    assert kv.get("enc:after-save") == "secret-after-save"


def stored_values(plain: Client) -> list[object]:
    """What the server holds, read without a key."""
    return [*plain.mget(*EXPECTED), *plain.lrange("enc:list", 0, -1),
            *plain.hvals("enc:hash"), plain.get("enc:after-save")]


def assert_no_plaintext_in(data_dir: Path) -> None:
    files = {path.name: path.read_bytes() for path in data_dir.iterdir() if path.is_file()}
    assert "kv.db" in files and any(name.startswith("kv.aof") for name in files), sorted(files)
    assert any(CONTROL.encode() in data for data in files.values()), sorted(files)
    for name, data in files.items():
        for secret in SECRETS:
            assert secret.encode() not in data, (name, secret)


# -- ciphers ---------------------------------------------------------------------------------

needs_gpg = pytest.mark.skipif(not gpg_available(), reason="gpg or python-gnupg is missing")


@pytest.fixture(scope="module")
def keyring() -> Iterator[Keyring]:
    with new_keyring() as made:
        yield made


@pytest.fixture(scope="module")
def other_keyring() -> Iterator[Keyring]:
    with new_keyring() as made:
        yield made


@pytest.fixture(scope="module")
def age_keys() -> tuple[str, str]:
    import pyrage  # type: ignore[import-untyped]

    return str(pyrage.x25519.Identity.generate()), str(pyrage.x25519.Identity.generate())


CipherPair = tuple[Cipher, Cipher]
"""The cipher values are written with, and one holding a different key."""


@pytest.fixture(params=[pytest.param("gpg", marks=needs_gpg), "age"])
def ciphers(request: pytest.FixtureRequest) -> CipherPair:
    if request.param == "gpg":
        mine: Keyring = request.getfixturevalue("keyring")
        other: Keyring = request.getfixturevalue("other_keyring")
        return (GpgCipher(mine.fingerprint, gnupghome=mine.home),
                GpgCipher(other.fingerprint, gnupghome=other.home))
    secret, other_secret = request.getfixturevalue("age_keys")
    return AgeCipher(identities=secret), AgeCipher(identities=other_secret)


# -- end to end -------------------------------------------------------------------------------

def test_the_server_and_its_files_only_ever_hold_ciphertext(tmp_path: Path,
                                                            ciphers: CipherPair) -> None:
    """Written encrypted, read back typed, seen as envelopes by a keyless client, and
    absent as plaintext from the AOF and the snapshot, before and after a restart."""
    cipher, _ = ciphers
    data_dir = tmp_path / "data"
    server = start_server(data_dir, "--appendfsync", "always")
    envelope = b"\x00kvenc1:" + cipher.name.encode() + b"\x00"
    with server.client(encryption=cipher) as kv, server.client() as plain:
        write_everything(kv)
        plain.set("control", CONTROL)
        assert kv.save() is True  # the values so far go to the snapshot...
        kv.set("enc:after-save", "secret-after-save")  # ...this one only to the AOF
        assert_everything_reads_back(kv)
        for stored in stored_values(plain):
            assert isinstance(stored, bytes) and stored.startswith(envelope), stored
            assert not any(secret.encode() in stored for secret in SECRETS)
        assert sorted(plain.hkeys("enc:hash")) == ["count", "field"]  # field names stay plain
    assert server.stop() == 0, server.log()
    assert_no_plaintext_in(data_dir)

    server = start_server(data_dir)
    with server.client(encryption=cipher) as kv:
        assert_everything_reads_back(kv)
    assert server.stop() == 0, server.log()
    assert_no_plaintext_in(data_dir)


def test_another_key_cannot_decrypt_and_the_connection_stays_usable(
        kv_server: ServerProcess, ciphers: CipherPair) -> None:
    """A failed decryption is that reply's error: replies after it stay in step."""
    cipher, wrong = ciphers
    with kv_server.client(encryption=cipher) as kv, kv_server.client(encryption=wrong) as thief:
        kv.set("k", "secret-k")
        kv.rpush("q", "secret-q")
        with pytest.raises(DecryptionError, match=f"{cipher.name} decryption failed"):
            thief.get("k")
        session = thief.session
        assert thief.ping() == "PONG"
        assert thief.session == session  # the same connection: nothing was out of step
        results = thief.pipeline().get("k").exists("k").lrange("q", 0, -1).execute(
            raise_on_error=False)
        assert isinstance(results[0], DecryptionError)
        assert results[1] == 1
        assert isinstance(results[2], DecryptionError)


@needs_gpg
def test_a_value_from_another_scheme_is_refused_by_name(kv_server: ServerProcess,
                                                        keyring: Keyring,
                                                        age_keys: tuple[str, str]) -> None:
    """The envelope names its scheme, so the error says what went wrong instead of gpg's
    cryptic failure on age data."""
    with kv_server.client(encryption=AgeCipher(identities=age_keys[0])) as age, \
            kv_server.client(encryption=GpgCipher(keyring.fingerprint,
                                                  gnupghome=keyring.home)) as gpg:
        age.set("k", 1)
        with pytest.raises(DecryptionError, match="scheme 'age', but the cipher is 'gpg'"):
            gpg.get("k")


refused: list[tuple[str, Callable[[Client], Any]]] = [
    ("INCR", lambda kv: kv.incr("n")),
    ("APPEND", lambda kv: kv.append("k", "x")),
    ("LREM", lambda kv: kv.lrem("q", 0, "x")),
]


@pytest.mark.parametrize(("command", "call"), refused, ids=[name for name, _ in refused])
def test_commands_that_cannot_work_on_ciphertext_are_refused_before_sending(
        kv_server: ServerProcess, age_keys: tuple[str, str], command: str,
        call: Callable[[Client], Any]) -> None:
    """INCR or APPEND would corrupt a ciphertext, LREM could never match one: the client
    refuses them without sending anything (the server's command count proves it)."""
    with kv_server.client(encryption=AgeCipher(identities=age_keys[0])) as kv, \
            kv_server.client() as plain:
        before = plain.info("stats")["stats"]["total_commands_processed"]
        with pytest.raises(EncryptionError, match="not available with client-side encryption"):
            call(kv)
        assert plain.info("stats")["stats"]["total_commands_processed"] == before + 1

