"""kv-server: the trio server of kv.

Run it with ``kv-server`` (or ``python -m kv_server``); embed it with
``trio.run(serve, ServerConfig(password=...))``.
"""

from ._config import ServerConfig as ServerConfig
from ._server import serve as serve
from ._state import ServerState as ServerState
from ._version import __version__ as __version__

__all__ = ["ServerConfig", "ServerState", "__version__", "serve"]
