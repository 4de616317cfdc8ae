"""Server statistics: counters the server keeps, and process figures read on demand.

Clients can read these through INFO and cannot write them. Per-command counters live
on the dispatcher's entries; this module holds the rest.
"""

from __future__ import annotations

import collections
import os
import resource
import sys

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
# ru_maxrss is in kibibytes on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


class Stats:
    """Counters updated by connections and dispatch."""

    __slots__ = (
        "auth_failures", "connections_received", "error_replies", "handshake_timeouts",
        "idle_disconnects", "net_input_bytes", "net_output_bytes", "output_buffer_disconnects",
        "protocol_errors", "rejected_connections",
    )

    def __init__(self) -> None:
        self.connections_received = 0
        self.auth_failures = 0
        """Handshakes refused for a wrong password."""
        self.handshake_timeouts = 0
        self.protocol_errors = 0
        """Connections closed for malformed frames or messages."""
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.output_buffer_disconnects = 0
        """Subscribers cut off for letting their output pile up past the limit."""
        self.rejected_connections = 0
        """Connections refused at maxclients."""
        self.idle_disconnects = 0
        """Connections closed by the idle timeout."""
        self.error_replies: collections.Counter[str] = collections.Counter()
        """Error replies sent, by code (INFO errorstats)."""


def process_memory() -> tuple[int, int]:
    """``(rss, peak_rss)`` of this process in bytes.

    Python has no allocator-level figure like Redis's ``used_memory``; the resident
    set size is what the operating system charges for the data, and what issue
    reports compare against Redis.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT
    try:
        with open("/proc/self/statm", "rb") as statm:
            rss = int(statm.read().split()[1]) * _PAGE_BYTES
    except OSError:
        rss = peak
    return rss, max(peak, rss)
