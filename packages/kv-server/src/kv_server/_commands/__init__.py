"""Command implementations, one module per family (Redis's t_*.c split).

Importing this package registers every function with the dispatcher.
"""

from . import (
    blocking,
    connection,
    counters,
    expiry,
    hashes,
    keys,
    lists,
    persistence,
    pubsub,
    server,
    strings,
    transactions,
)

__all__ = ["blocking", "connection", "counters", "expiry", "hashes", "keys", "lists",
           "persistence", "pubsub", "server", "strings", "transactions"]
