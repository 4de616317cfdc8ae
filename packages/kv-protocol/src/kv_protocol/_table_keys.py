"""The command table: commands on keys of any type, and their time to live."""

from __future__ import annotations

from typing import Final

from ._kinds import ArgKind
from ._spec import Arg, CommandSpec, Flag, Option, Reply, choice, integer, key, options

_RO = Flag.READONLY
_W = Flag.WRITE
_WM = _W | Flag.DENYOOM  # may grow memory: checked against --maxmemory

_CONDITION: Final = choice("condition", "NX", "XX", "GT", "LT", optional=True)
_EXPIRE_NOTES: Final = (
    "Answers 1 if the time to live was set, 0 if the key is missing or the condition "
    "failed: NX only when the key has none, XX only when it has one, GT only when the "
    "new one is later, LT only when it is earlier (no time to live counts as infinitely "
    "late, as in Redis). A time that has passed deletes the key. The deadline is stored "
    "as an absolute Unix time in milliseconds. An expired key is gone for every "
    "command at once, and the server reclaims its memory in the background within "
    "about a quarter of a second of the deadline even if nobody reads it again."
)
_TTL_NOTES: Final = "-2 when the key is missing, -1 when it has no time to live (as Redis)."

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("DEL", "keyspace", "Delete keys; answer how many existed.",
                (key(multiple=True),), _W, Reply.INTEGER),
    CommandSpec("UNLINK", "keyspace", "Delete keys, as DEL does; answer how many existed.",
                (key(multiple=True),), _W, Reply.INTEGER,
                notes="The same as DEL: kv frees memory at once in both (Redis frees in a "
                      "background thread for UNLINK; CPython frees when the last reference "
                      "goes)."),
    CommandSpec("EXISTS", "keyspace", "Count how many of the keys exist.",
                (key(multiple=True),), _RO, Reply.INTEGER,
                notes="A key named twice is counted twice, as in Redis."),
    CommandSpec("TOUCH", "keyspace", "Count how many of the keys exist, as a read of each.",
                (key(multiple=True),), _RO, Reply.INTEGER),
    CommandSpec("TYPE", "keyspace", "The type of a key: string, list, hash, or none.",
                (key(),), _RO, Reply.TEXT,
                notes="A string key holds one value of any type, a list or a map included: "
                      "its type is `string` because SET made it. `list` and `hash` keys are "
                      "made by the list and hash commands."),
    CommandSpec("KEYS", "keyspace", "Every key matching a glob pattern.",
                (Arg("pattern", ArgKind.PATTERN),), _RO, Reply.LIST,
                notes="Text and bytes keys are distinct keys. A pattern matches both kinds: "
                      "bytes keys are matched against the pattern's UTF-8 form. Patterns follow "
                      "Redis: `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` and `\\` to escape. The "
                      "matcher never backtracks, so no pattern is slow to match."),
    CommandSpec("SCAN", "keyspace", "Iterate over the keys a few at a time.",
                (integer("cursor"), options(Option("MATCH", Arg("pattern", ArgKind.PATTERN)),
                                            Option("COUNT", integer("count")),
                                            Option("TYPE", Arg("type", ArgKind.TEXT)))),
                _RO, Reply.LIST,
                notes="Answers `[cursor, keys]`; start with cursor 0 and go on with the cursor "
                      "each reply gives until it is 0. Every key that exists from the first "
                      "call to the last is returned exactly once (no duplicates, unlike "
                      "Redis); keys added meanwhile may or may not be. COUNT (default 10) is "
                      "how many keys to look at per call; MATCH and TYPE filter those. kv "
                      "differs from Redis here: a cursor is a server-side position in a "
                      "snapshot of the key names taken by the first call, shared by all "
                      "connections. At most 64 are open at once and each lasts 10 minutes "
                      "after its last use; a cursor that has ended or was dropped answers "
                      "NOKEY, and the scan must start again from 0."),
    CommandSpec("RANDOMKEY", "keyspace", "A random key, or null when there are none.", (),
                _RO, Reply.VALUE,
                notes="Costs time in proportion to the number of keys (a Python dict has no "
                      "random access), unlike Redis's constant time."),
    CommandSpec("RENAME", "keyspace", "Rename a key, replacing any key of the new name.",
                (key(), key("newkey")), _W, Reply.STATUS,
                notes="NOKEY when the key is missing. The time to live moves with the key."),
    CommandSpec("RENAMENX", "keyspace", "Rename a key only if the new name is free.",
                (key(), key("newkey")), _W, Reply.INTEGER,
                notes="Answers 1 if renamed, 0 if the new name exists; NOKEY when the key "
                      "is missing."),
    CommandSpec("COPY", "keyspace", "Copy a key's value and time to live to another key.",
                (key("source"), key("destination"), options(Option("REPLACE"))),
                _WM, Reply.INTEGER,
                notes="Answers 1 if copied, 0 if the source is missing or the destination "
                      "exists without REPLACE. The copy is deep: changing one does not change "
                      "the other. Redis's DB option is not supported (kv has one keyspace)."),
    CommandSpec("DBSIZE", "keyspace", "The number of keys.", (), _RO, Reply.INTEGER),
    CommandSpec("OBJECT ENCODING", "keyspace", "How the server stores a key's value.",
                (key(),), _RO, Reply.VALUE,
                notes="Null for a missing key. For string keys, the value's type: `int`, "
                      "`float`, `text`, `bytes`, `bool`, `null`, `array` or `map`; `deque` for "
                      "lists and `dict` for hashes. (OBJECT IDLETIME is not offered: it would "
                      "cost a timestamp per key on every read.)"),
    CommandSpec("EXPIRE", "expiry", "Set a key's time to live in seconds.",
                (key(), integer("seconds"), _CONDITION), _W, Reply.INTEGER,
                notes=_EXPIRE_NOTES),
    CommandSpec("PEXPIRE", "expiry", "Set a key's time to live in milliseconds.",
                (key(), integer("milliseconds"), _CONDITION), _W, Reply.INTEGER,
                notes=_EXPIRE_NOTES),
    CommandSpec("EXPIREAT", "expiry", "Set when a key expires, as a Unix time in seconds.",
                (key(), integer("unix-time-seconds"), _CONDITION), _W, Reply.INTEGER,
                notes=_EXPIRE_NOTES),
    CommandSpec("PEXPIREAT", "expiry", "Set when a key expires, as a Unix time in milliseconds.",
                (key(), integer("unix-time-milliseconds"), _CONDITION), _W, Reply.INTEGER,
                notes=_EXPIRE_NOTES),
    CommandSpec("TTL", "expiry", "A key's remaining time to live in seconds.", (key(),), _RO,
                Reply.INTEGER, notes=_TTL_NOTES + " Rounded to the nearest second."),
    CommandSpec("PTTL", "expiry", "A key's remaining time to live in milliseconds.", (key(),),
                _RO, Reply.INTEGER, notes=_TTL_NOTES),
    CommandSpec("EXPIRETIME", "expiry", "When a key expires, as a Unix time in seconds.",
                (key(),), _RO, Reply.INTEGER, notes=_TTL_NOTES),
    CommandSpec("PEXPIRETIME", "expiry", "When a key expires, as a Unix time in milliseconds.",
                (key(),), _RO, Reply.INTEGER, notes=_TTL_NOTES),
    CommandSpec("PERSIST", "expiry", "Remove a key's time to live.", (key(),), _W,
                Reply.INTEGER,
                notes="Answers 1 if a time to live was removed, 0 otherwise."),
)
