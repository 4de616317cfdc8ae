"""Command implementations, one module per family (Redis's t_*.c split).

Importing this package registers every function with the dispatcher.
"""

from . import connection, keys, server, strings

__all__ = ["connection", "keys", "server", "strings"]
