"""Client-side value encryption: the sans-IO part that both clients and ``kv`` plug in.

Values are encrypted before they leave the process and decrypted after they come
back, so the server, its AOF and its snapshots only ever hold ciphertext. The
cipher is pluggable (:class:`Cipher`); :mod:`kv_client._ciphers` offers GnuPG and
age.

The envelope. A stored value is the bytes::

    b"\\x00kvenc1:" + scheme + b"\\x00" + ciphertext

``scheme`` is the cipher's ``name`` (ASCII, matching :data:`SCHEME_PATTERN`, so it
never holds the NUL that ends it), and the plaintext inside the ciphertext is the
CBOR item of the value, exactly as a frame body carries it, so a decrypted value
comes back with its type (an int stays an int; a tuple comes back a list, as it
does without encryption). The leading NUL keeps the envelope from looking like
text, ``kvenc1`` names the format and its version, and the scheme lets a reader
refuse a value made by another cipher with an error that names both, instead of
a cryptic failure from the wrong tool.

The policy, decided per command from the command table:

- Encrypted: every argument declared ``ArgKind.VALUE`` of a command that stores or
  returns it unchanged (SET, GETSET, SETNX, SETEX, PSETEX, MSET, the pushes, LSET,
  HSET, HSETNX; ECHO and PING too, whose message comes back and is decrypted;
  PUBLISH, whose message subscribers decrypt, ``_pubsub.py``).
  Keys, field names, counts, options and time-to-live stay plaintext: the server
  needs them, and sees them.
- Refused with :class:`EncryptionError`, before anything is sent: commands that
  compare a value argument with stored ones (:data:`COMPARES_VALUES`: encryption
  is randomised, so two encryptions of one value never match), and commands that
  compute on a stored value (:data:`COMPUTES_ON_VALUES`): INCR or APPEND would
  fail on, or corrupt, the ciphertext; STRLEN or GETRANGE would measure or cut it.
- Passed unchanged: commands the table does not know, since the client cannot
  tell which of their arguments are values.

Replies of the commands that answer stored values (:func:`answers_values`: the
string, list and hash families but HKEYS and HFIND, and ECHO and PING) are walked
(:func:`decrypt_reply`): every bytes value that carries the envelope is
decrypted, and anything else (a count, a value stored before encryption was
turned on) is returned as it is. Replies that name keys or fields (KEYS, SCAN,
HKEYS...) are never decrypted: a key name that looks like an envelope is a name.

Not covered: a ciphertext is not bound to its key, so whoever controls the server
can move or replay a value from one key to another, and a public key lets anyone
store a value that decrypts. Encryption keeps values secret; it does not say who
wrote them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Protocol

from kv_protocol.commands import ArgKind, argument_error, arity_message, resolve
from kv_protocol.errors import KvError, RemoteProtocolError, ServerError
from kv_protocol.framing import HEADER, HEADER_SIZE, FrameDecoder, encode_frame
from kv_protocol.values import is_value, type_name

MAGIC: Final = b"\x00kvenc1:"
"""How every encrypted value starts: a NUL, the format name and version, a colon."""
SEPARATOR: Final = b"\x00"
"""Ends the scheme name; the ciphertext follows."""
# Long enough for any scheme name, short enough that finding the separator is a
# bounded search.
_LONGEST_SCHEME_BYTES: Final = 32
SCHEME_PATTERN: Final = re.compile(rf"[a-z0-9][a-z0-9._+-]{{0,{_LONGEST_SCHEME_BYTES - 1}}}")
"""What a cipher's ``name`` may be: short lowercase ASCII, never a NUL."""

COMPARES_VALUES: Final = frozenset({"LPOS", "LREM", "LINSERT"})
"""Commands that look for stored values equal to an argument: they cannot match
ciphertext, since encrypting one value twice gives different bytes."""
COMPUTES_ON_VALUES: Final = frozenset({
    "APPEND", "SETRANGE", "GETRANGE", "STRLEN", "HSTRLEN",
    "INCR", "DECR", "INCRBY", "DECRBY", "INCRBYFLOAT", "HINCRBY", "HINCRBYFLOAT",
})
"""Commands that read a stored value's content on the server: on ciphertext they
would fail, answer about the ciphertext, or corrupt it."""


class EncryptionError(KvError):
    """Encryption cannot be set up or done: a missing extra or tool, no usable
    recipient, or a command that cannot work on encrypted values."""


class DecryptionError(EncryptionError):
    """A value cannot be decrypted: wrong or missing key, a missing or wrong
    passphrase, tampered ciphertext, or a value made by another scheme."""


class Cipher(Protocol):
    """What encrypts and decrypts values; write your own by giving these three.

    ``encrypt`` must be randomised and authenticated (tampering must make
    ``decrypt`` fail), as GnuPG's and age's are. Failures are raised as
    :class:`EncryptionError` and :class:`DecryptionError`, which is what callers
    of :func:`encrypt_value` and :func:`decrypt_value` catch.
    """

    @property
    def name(self) -> str:
        """The scheme recorded in each envelope, such as ``"gpg"``; see :data:`SCHEME_PATTERN`."""
        ...

    def encrypt(self, plaintext: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes) -> bytes: ...


def _header(cipher: Cipher) -> bytes:
    name = cipher.name
    if not SCHEME_PATTERN.fullmatch(name):
        raise EncryptionError(f"cipher name {name!r} is not a valid scheme: it must match "
                              f"{SCHEME_PATTERN.pattern}")
    return MAGIC + name.encode("ascii") + SEPARATOR


def encrypt_value(value: object, cipher: Cipher) -> bytes:
    """The envelope holding ``value``, encrypted with ``cipher``.

    Raises:
        EncryptionError: ``value`` is not a storable value (the server could not
            check it once encrypted), or the cipher failed.
    """
    if not is_value(value):
        raise EncryptionError(f"cannot encrypt {type_name(value)}: not a storable value")
    header = _header(cipher)
    plaintext = encode_frame(value)[HEADER_SIZE:]
    return header + cipher.encrypt(plaintext)


def decrypt_value(data: bytes, cipher: Cipher) -> object:
    """The value inside an envelope made by :func:`encrypt_value`.

    Raises:
        DecryptionError: ``data`` is not a well-formed envelope, was made by another
            scheme, does not decrypt, or decrypts to something that is not a value.
    """
    if not data.startswith(MAGIC):
        raise DecryptionError("not an encrypted value: the envelope's prefix is missing")
    end = data.find(SEPARATOR, len(MAGIC), len(MAGIC) + _LONGEST_SCHEME_BYTES + 1)
    scheme = data[len(MAGIC):end].decode("ascii", "replace") if end >= 0 else ""
    if not SCHEME_PATTERN.fullmatch(scheme):
        raise DecryptionError("malformed encrypted value: no valid scheme name after the prefix")
    if scheme != cipher.name:
        raise DecryptionError(f"value was encrypted with scheme {scheme!r}, "
                              f"but the cipher is {cipher.name!r}")
    plaintext = cipher.decrypt(data[end + 1:])
    # The frame decoder applies the rules every received value gets (no tags, a
    # bounded depth, exactly one item): a public key lets anyone encrypt, so the
    # plaintext is no more trusted than the wire.
    decoder = FrameDecoder()
    try:
        items = decoder.feed(HEADER.pack(len(plaintext)) + plaintext)
    except RemoteProtocolError as exc:
        raise DecryptionError(f"decrypted {scheme} data is not a kv value: {exc}") from exc
    if len(items) != 1 or decoder.buffered or not is_value(items[0]):
        raise DecryptionError(f"decrypted {scheme} data is not one kv value")
    return items[0]


def encrypt_arguments(args: Sequence[object], cipher: Cipher) -> list[object]:
    """A copy of a command's argv with every stored value encrypted (see the policy above).

    Raises:
        EncryptionError: the command compares or computes on values, which cannot
            work on ciphertext, or the cipher failed.
        ServerError: the argument count is wrong, and ArgumentTypeError: a value is
            not storable. These are the errors the server would answer; raising them
            here keeps the plaintext of a bad call from leaving the process.
    """
    spec = resolve(args)
    if spec is None:
        return list(args)
    if spec.name in COMPARES_VALUES:
        raise EncryptionError(f"{spec.name} compares values on the server, which cannot match "
                              "encrypted values (each encryption differs); it is not available "
                              "with client-side encryption")
    if spec.name in COMPUTES_ON_VALUES:
        raise EncryptionError(f"{spec.name} computes on a stored value on the server, which only "
                              "holds ciphertext; it is not available with client-side encryption")
    words = spec.words
    if not spec.check_arity(len(args) - words):
        raise ServerError(arity_message(spec.name))
    encrypted = list(args)
    for index in range(words, len(args)):
        arg = spec.arg_at(index - words, len(args) - words)
        if arg.kind is ArgKind.VALUE:
            if not is_value(args[index]):
                raise argument_error(spec, arg, args[index])
            encrypted[index] = encrypt_value(args[index], cipher)
    return encrypted


VALUE_FAMILIES: Final = frozenset({"string", "list", "hash"})
"""The table's families whose replies hold stored values, where not in :data:`ANSWERS_NAMES`."""
ANSWERS_NAMES: Final = frozenset({"HKEYS", "HFIND"})
"""Commands of those families that answer field names, never values."""
ECHOES_VALUES: Final = frozenset({"PING", "ECHO"})
"""Commands that send an encrypted argument back."""


def answers_values(argv: Sequence[object]) -> bool:
    """Whether the reply to ``argv`` holds stored values (which may be encrypted)."""
    spec = resolve(argv)
    if spec is None:
        return False
    return spec.name in ECHOES_VALUES or (
        spec.group in VALUE_FAMILIES and spec.name not in ANSWERS_NAMES)


def decrypt_reply(argv: Sequence[object], reply: object, cipher: Cipher) -> object:
    """The reply to ``argv`` with every enveloped value in it decrypted.

    Only replies that hold values are touched (:func:`answers_values`). Lists and
    the values of maps are walked (map keys are field names, never encrypted); a
    decrypted value is returned as it is, not walked again, so a stored value that
    itself holds an envelope's bytes comes back unchanged.

    Raises:
        DecryptionError: as :func:`decrypt_value`, for any enveloped value.
    """
    return _decrypted(reply, cipher) if answers_values(argv) else reply


def _decrypted(reply: object, cipher: Cipher) -> object:
    if type(reply) is bytes:
        return decrypt_value(reply, cipher) if reply.startswith(MAGIC) else reply
    if type(reply) is list:
        return [_decrypted(item, cipher) for item in reply]
    if type(reply) is dict:
        return {key: _decrypted(item, cipher) for key, item in reply.items()}
    return reply
