"""``kv SUBSCRIBE channel...`` and ``kv PSUBSCRIBE pattern...``: print messages as they arrive.

One line per message, flushed at once so that a pipe sees it: ``channel<TAB>payload``
in the plain format's item form (``_cli_format``), or with ``--json`` one object
``{"kind", "channel", "data"[, "pattern"]}`` of tagged JSON. ``--count N`` stops after
N messages; otherwise the subscription lasts until Ctrl-C (exit status 130) or until
the server closes the connection (status 1, with its reason).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Final

from ._cli_format import message_line
from ._cli_options import Crypt
from ._config import ClientConfig
from ._sync_pubsub import PubSub

SUBSCRIBING: Final = frozenset({"SUBSCRIBE", "PSUBSCRIBE"})
"""The commands that make ``kv`` a subscriber."""


def run_subscribe(config: ClientConfig, argv: Sequence[object], as_json: bool, count: int | None,
                  crypt: Crypt | None) -> None:
    """Subscribe as ``argv`` says and print each message, ``count`` of them or until interrupted.

    Raises:
        ServerError: the server refused the subscription.
        ConnectionError: the connection broke or the server closed it.
    """
    cipher = crypt.cipher if crypt is not None and crypt.decrypt else None
    names = [name if isinstance(name, str | bytes) else str(name) for name in argv[1:]]
    with PubSub(dataclasses.replace(config, encryption=cipher)) as subscriber:
        if str(argv[0]).upper() == "PSUBSCRIBE":
            subscriber.psubscribe(*names)
        else:
            subscriber.subscribe(*names)
        for received, message in enumerate(subscriber, 1):
            sys.stdout.write(message_line(message, as_json=as_json) + "\n")
            sys.stdout.flush()
            if received == count:
                return
