"""kv-tools: operator tools for kv (``kv-bench`` now; file tools with persistence)."""

from ._version import __version__ as __version__

__all__ = ["__version__"]
