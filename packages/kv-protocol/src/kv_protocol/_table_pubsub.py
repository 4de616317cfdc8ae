"""The command table: publish/subscribe messaging (not stored, not logged)."""

from __future__ import annotations

from typing import Final

from ._kinds import ArgKind
from ._spec import Arg, CommandSpec, Flag, Reply, value

_SUB = Flag.PUBSUB | Flag.NO_MULTI
_COUNT: Final = ("Answers how many channels and patterns this connection is subscribed to "
                 "afterwards. ")
_PUSHES: Final = ("Messages then arrive as pushes, never as replies: `[2, \"message\", "
                  "channel, payload]` for a channel, `[2, \"pmessage\", pattern, channel, "
                  "payload]` for a pattern. While it has subscriptions a connection may only "
                  "run SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE and PING, as in Redis. "
                  "A subscriber that does not read its messages is disconnected once more "
                  "than `--pubsub-buffer-limit` bytes wait for it.")


def _channel(name: str = "channel", *, multiple: bool = False, optional: bool = False) -> Arg:
    return Arg(name, ArgKind.KEY, multiple=multiple, optional=optional)


def _pattern(*, multiple: bool = False, optional: bool = False) -> Arg:
    return Arg("pattern", ArgKind.PATTERN, multiple=multiple, optional=optional)


COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec("SUBSCRIBE", "pubsub", "Receive the messages published to channels.",
                (_channel(multiple=True),), _SUB, Reply.INTEGER, notes=_COUNT + _PUSHES),
    CommandSpec("UNSUBSCRIBE", "pubsub", "Stop receiving messages from channels.",
                (_channel(multiple=True, optional=True),), _SUB, Reply.INTEGER,
                notes=_COUNT + "Without channels: from every channel."),
    CommandSpec("PSUBSCRIBE", "pubsub", "Receive the messages of channels matching patterns.",
                (_pattern(multiple=True),), _SUB, Reply.INTEGER,
                notes=_COUNT + "Patterns are globs, as KEYS's. A connection subscribed to a "
                      "channel and to a pattern that matches it receives each message twice, "
                      "as in Redis. " + _PUSHES),
    CommandSpec("PUNSUBSCRIBE", "pubsub", "Stop receiving messages for patterns.",
                (_pattern(multiple=True, optional=True),), _SUB, Reply.INTEGER,
                notes=_COUNT + "Without patterns: for every pattern."),
    CommandSpec("PUBLISH", "pubsub", "Send a message to a channel's subscribers.",
                (_channel(), value("message")), Flag(0), Reply.INTEGER,
                notes="Answers how many subscriptions received it (channel and pattern "
                      "subscriptions). The message keeps its type. Each subscriber receives "
                      "one publisher's messages in the order they were published."),
    CommandSpec("PUBSUB CHANNELS", "pubsub", "The channels that have subscribers.",
                (_pattern(optional=True),), Flag(0), Reply.LIST,
                notes="Only those matching the pattern when one is given; pattern "
                      "subscriptions are not counted."),
    CommandSpec("PUBSUB NUMSUB", "pubsub", "The number of subscribers of channels.",
                (_channel(multiple=True, optional=True),), Flag(0), Reply.MAP,
                notes="A map channel -> subscribers (Redis answers a flat list); pattern "
                      "subscriptions are not counted."),
    CommandSpec("PUBSUB NUMPAT", "pubsub", "The number of distinct subscribed patterns.", (),
                Flag(0), Reply.INTEGER),
)
