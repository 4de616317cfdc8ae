"""Publishing and inspecting channels: the table's ``pubsub`` family.

Subscribing has no method here: SUBSCRIBE turns its connection into a subscriber,
so it belongs to the object that holds one connection, ``Client.pubsub()``.
"""

from __future__ import annotations

from kv_protocol.values import Key, Value

from ._commands_base import CommandsBase, as_is


class PubSubCommands(CommandsBase):
    """Commands of ``kv_protocol._table_pubsub`` that any connection may send."""

    def publish(self, channel: Key, message: Value) -> int:
        """Send a message to a channel's subscribers."""
        return self._call(int, "PUBLISH", channel, message)

    def pubsub_channels(self, pattern: str | bytes | None = None) -> list[Key]:
        """The channels that have subscribers."""
        channels: list[Key] = self._call(as_is, "PUBSUB", "CHANNELS",
                                         *(() if pattern is None else (pattern,)))
        return channels

    def pubsub_numsub(self, *channels: Key) -> dict[Key, int]:
        """The number of subscribers of channels."""
        counts: dict[Key, int] = self._call(as_is, "PUBSUB", "NUMSUB", *channels)
        return counts

    def pubsub_numpat(self) -> int:
        """The number of distinct subscribed patterns."""
        return self._call(int, "PUBSUB", "NUMPAT")

