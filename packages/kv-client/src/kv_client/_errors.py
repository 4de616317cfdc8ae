"""Client-side errors, added to kv_protocol's tree.

Server errors (``WrongTypeError``, ``AuthError``...) and protocol errors come from
``kv_protocol.errors``; these two describe the transport. They also derive from the
built-in exceptions of the same name, so ``except ConnectionError`` and
``except TimeoutError`` written for sockets keep working::

    KvError
    ├── ConnectionError   connecting failed, or the connection broke or was closed
    ├── TimeoutError      no reply within the timeout; the connection is closed
    └── WatchError        a watched key changed, so EXEC ran nothing

``WatchError`` is no error reply (EXEC answers null), so it carries no code.
"""

from __future__ import annotations

import builtins

from kv_protocol.errors import KvError


class ConnectionError(KvError, builtins.ConnectionError):
    """Connecting failed, or the connection broke or was closed by the server.

    A command whose reply did not arrive may or may not have run.
    """


class TimeoutError(KvError, builtins.TimeoutError):
    """No reply arrived within the timeout; the connection was closed, because the
    reply might still arrive and would be taken for the next command's."""


class WatchError(KvError):
    """A key watched with ``Pipeline.watch`` changed before EXEC, which therefore ran
    nothing (the server answered null). Read the keys again and retry:
    ``Client.transaction`` does that."""
