"""The ``kv`` prompt's connection: one for the whole session, so that MULTI ... EXEC work.

MULTI, WATCH and the commands queued after MULTI only mean something on the
connection that sent them, and a pooled client may lend another one for the next
command (which is why it refuses them). The prompt holds one connection instead,
and follows the transaction's state from the replies, as redis-cli's user does:

- MULTI answered OK: later commands that answer ``QUEUED`` are remembered, so that
  with ``--decrypt`` each value in EXEC's answer is decrypted as its command's reply;
- WATCH answered OK: a watch is in force until EXEC, DISCARD or UNWATCH;
- a connection the server closed while the prompt was idle (a restart, CLIENT KILL)
  is replaced before the next command, as the pool does, unless a transaction or a
  watch was in force: that state is gone, and the command fails saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from kv_protocol.errors import KvError
from kv_protocol.messages import REPLY

from ._cli_options import Crypt
from ._config import ClientConfig
from ._core import encode_request, request_timeout
from ._encryption import decrypt_reply, encrypt_arguments
from ._errors import ConnectionError
from ._pool import IdleConnections
from ._sync_connection import SyncConnection

ENDS_TRANSACTION: Final = frozenset({"EXEC", "DISCARD"})


class PromptSession:
    """Runs the prompt's commands, one connection for all (see the module docstring)."""

    def __init__(self, config: ClientConfig, crypt: Crypt | None) -> None:
        self.config, self.crypt = config, crypt
        self._idle: IdleConnections[SyncConnection] = IdleConnections(config.health_check_s)
        self._queued: list[Sequence[object]] | None = None
        """The commands queued since MULTI; None outside a transaction."""
        self._watching = False

    def connect(self) -> None:
        """Connect now, so that a wrong address or password shows before the first prompt."""
        self._idle.give_back(self._take())

    def _take(self) -> SyncConnection:
        taken = self._idle.take()
        if taken is not None:
            return taken[0]
        if self._queued is not None or self._watching:
            self._queued, self._watching = None, False
            raise ConnectionError(f"{self.config.address} closed the connection: the "
                                  "transaction or watch in progress is gone")
        return SyncConnection(self.config)

    def execute(self, *args: object) -> Any:
        """Run one command; its reply, decrypted as ``--decrypt`` asks. An error reply raises."""
        crypt = self.crypt
        argv = encrypt_arguments(args, crypt.cipher) if crypt is not None and crypt.encrypt else args
        commands = [argv]
        payload = encode_request(self.config, commands)
        connection = self._take()
        try:
            [reply] = connection.request(payload, 1, request_timeout(self.config, commands))
        except BaseException:
            connection.abort()
            self._queued, self._watching = None, False  # the server ends both with the connection
            raise
        self._idle.give_back(connection)
        queued = self._follow(args, reply)
        if isinstance(reply, KvError):
            raise reply
        if crypt is None or not crypt.decrypt:
            return reply
        if queued is not None and type(reply) is list:
            return [[REPLY, decrypt_reply(command, envelope[1], crypt.cipher)]
                    if envelope[0] == REPLY else envelope
                    for command, envelope in zip(queued, reply, strict=True)]
        return decrypt_reply(args, reply, crypt.cipher)

    def _follow(self, args: Sequence[object], reply: object) -> list[Sequence[object]] | None:
        """Follow the transaction's state; the commands EXEC ran, when ``args`` is EXEC."""
        name = args[0].upper() if type(args[0]) is str else None
        queued = self._queued
        if name in ENDS_TRANSACTION:
            self._queued, self._watching = None, False
            return queued if name == "EXEC" else None
        if isinstance(reply, KvError):
            return None
        if name == "MULTI":
            self._queued = []
        elif queued is not None and reply == "QUEUED":
            queued.append(args)
        elif name == "WATCH":
            self._watching = True
        elif name == "UNWATCH":
            self._watching = False
        return None

    def close(self) -> None:
        for connection in self._idle.drain():
            connection.abort()
