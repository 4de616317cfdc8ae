"""The command table: transactions (MULTI/EXEC with optimistic locking by WATCH)."""

from __future__ import annotations

from typing import Final

from ._spec import CommandSpec, Flag, Reply, key

_CONTROL = Flag.NOT_QUEUED | Flag.NO_MULTI

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("MULTI", "transactions", "Start a transaction.", (), _CONTROL, Reply.STATUS,
                notes="Later commands are checked and queued (each answers `QUEUED`) until "
                      "EXEC runs them or DISCARD drops them. A command refused while queueing "
                      "(unknown, wrong arity or argument kind, not allowed here) answers its "
                      "error and makes EXEC answer EXECABORT. MULTI inside MULTI is an error "
                      "and leaves the transaction as it was."),
    CommandSpec("EXEC", "transactions", "Run the queued commands as one atomic unit.", (),
                Flag.NOT_QUEUED, Reply.VALUE,
                notes="Answers a list with one envelope per queued command, `[0, value]` or "
                      "`[1, code, message]` as on the wire: a command that fails at run time "
                      "answers its error and the others still run, as in Redis. No other "
                      "client's command runs in between, and the AOF holds the transaction "
                      "as one record, so a crash never leaves part of it on disk. Answers "
                      "null, running nothing, when a watched key changed since WATCH; "
                      "EXECABORT when a command was refused while queueing. Either way the "
                      "transaction ends and every key is unwatched."),
    CommandSpec("DISCARD", "transactions", "Drop the queued commands.", (), Flag.NOT_QUEUED,
                Reply.STATUS, notes="Ends the transaction and unwatches every key."),
    CommandSpec("WATCH", "transactions", "Make the next EXEC depend on keys staying unchanged.",
                (key(multiple=True),), _CONTROL | Flag.READONLY, Reply.STATUS,
                notes="EXEC runs nothing and answers null if any watched key was written, "
                      "deleted, expired or flushed after WATCH, by any client (this one "
                      "included). Not allowed inside MULTI."),
    CommandSpec("UNWATCH", "transactions", "Forget every watched key.", (), Flag.READONLY,
                Reply.STATUS),
)
