"""Command implementations, one module per family (Redis's t_*.c split).

Importing this package registers every function with the dispatcher.
"""

from . import connection, counters, expiry, hashes, keys, lists, persistence, server, strings

__all__ = ["connection", "counters", "expiry", "hashes", "keys", "lists", "persistence", "server", "strings"]
