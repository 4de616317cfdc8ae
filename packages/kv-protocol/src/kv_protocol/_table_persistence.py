"""The command table: persistence (snapshots and the append-only file)."""

from __future__ import annotations

from typing import Final

from ._spec import CommandSpec, Flag, Reply, choice

# NO_MULTI: a snapshot taken inside EXEC would hold the transaction's first writes
# while its AOF record, logged after EXEC, lands past the snapshot's position.
_ADMIN = Flag.ADMIN | Flag.NO_MULTI

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("SAVE", "persistence", "Write a snapshot now, blocking every client until done.",
                (), _ADMIN, Reply.STATUS,
                notes="The snapshot (kv.db) is written to a temporary file, fsynced and renamed "
                      "into place; the previous one is kept as kv.db.old and the append-only "
                      "file restarts empty. Refused with `BUSY` while a BGSAVE runs. Prefer "
                      "BGSAVE on a server with many keys: SAVE stops every client until done."),
    CommandSpec("BGSAVE", "persistence", "Write a snapshot in the background.",
                (), _ADMIN, Reply.STATUS,
                notes="Answers at once. A forked child writes the dataset as it was when the "
                      "command ran, while the server keeps serving; writes made meanwhile go to "
                      "a new append-only file segment, so none is lost. LASTSAVE and INFO "
                      "persistence tell when it finished. Refused with `BUSY` while another "
                      "save runs."),
    CommandSpec("LASTSAVE", "persistence",
                "Unix time in seconds of the last successful snapshot.",
                (), Flag.READONLY | Flag.LOADING_OK, Reply.INTEGER),
    CommandSpec("CONVERT", "persistence",
                "Switch the snapshot's format between plaintext and binary.",
                (choice("format", "PLAINTEXT", "BINARY", optional=True),), _ADMIN, Reply.STATUS,
                notes="Without an argument the format flips. Runs a BGSAVE in the new format; "
                      "later saves, and restarts without `--binary`, keep it. kv-convert does "
                      "the same offline."),
)
