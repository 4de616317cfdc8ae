"""The command table: connection and server commands."""

from __future__ import annotations

from typing import Final

from ._kinds import ArgKind
from ._spec import Arg, CommandSpec, Flag, Reply, token, value

_RO = Flag.READONLY
_W = Flag.WRITE

COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("PING", "connection", "Check that the server answers.",
                (value("message", optional=True),), Flag.LOADING_OK | Flag.PUBSUB, Reply.VALUE,
                notes="Answers the text `PONG`, or the message itself, with its type. "
                      "Allowed on a subscribed connection, where it answers as a reply too."),
    CommandSpec("ECHO", "connection", "Send back the given value.", (value("message"),),
                Flag.LOADING_OK, Reply.VALUE),
    CommandSpec("CLIENT ID", "connection", "The id of this connection.", (),
                Flag.LOADING_OK, Reply.INTEGER),
    CommandSpec("CLIENT GETNAME", "connection", "The name of this connection, or null.", (),
                Flag.LOADING_OK, Reply.VALUE),
    CommandSpec("CLIENT SETNAME", "connection", "Name this connection.",
                (Arg("name", ArgKind.TEXT),), Flag.LOADING_OK, Reply.STATUS,
                notes="Names are printable text without spaces, at most 255 characters "
                      "(the rule the handshake applies to names too); the empty text removes "
                      "the name. The handshake sets the initial name."),
    CommandSpec("CLIENT LIST", "connection", "Describe every connection.", (),
                Flag.ADMIN | Flag.LOADING_OK, Reply.LIST,
                notes="Unlike Redis's text blob, each connection is a map: `id`, `addr`, `laddr`, "
                      "`transport` (`tcp`, `tls` or `unix`), `name`, `client-id`, `hostname`, "
                      "`user` (`default`, or `readonly` for the read-only password), `age` and "
                      "`idle` (seconds), `cmd` (last command), `commands` (commands run), `sub` and "
                      "`psub` (channel and pattern subscriptions), `multi` (commands queued, -1 "
                      "outside MULTI), `watch` (keys watched), `blocked` (waiting in a blocking "
                      "command) and `omem` (bytes waiting to be sent to a subscriber)."),
    CommandSpec("CLIENT KILL", "connection", "Close the connections with the given ids.",
                (token("ID"), Arg("id", ArgKind.INTEGER, multiple=True)),
                Flag.ADMIN | Flag.LOADING_OK, Reply.INTEGER,
                notes="Answers how many connections were closed. Each receives the push "
                      "`[2, \"kill\", reason]` after its last complete reply, then is closed. "
                      "A connection that kills itself gets this reply, then the push; the "
                      "commands it pipelined after CLIENT KILL are not run (as in Redis)."),
    CommandSpec("FLUSHALL", "server", "Delete every key.", (), _W | Flag.ADMIN, Reply.STATUS),
    CommandSpec("INFO", "server", "Information and statistics about the server.",
                (Arg("section", ArgKind.TEXT, optional=True, multiple=True),),
                Flag.LOADING_OK, Reply.MAP,
                notes="Answers a map of sections, each a map of fields. Without arguments, "
                      "or with `default` or `all`, every section; otherwise the named "
                      "sections (case-insensitive; unknown names are left out, as in Redis). "
                      "Sections: server, clients, memory, persistence, stats, keyspace, commandstats, "
                      "errorstats. See docs/protocol.md for the fields."),
)
