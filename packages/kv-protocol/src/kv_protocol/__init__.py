"""kv-protocol: the sans-IO core of kv (framing, handshake, command table, errors, files).

Nothing in this package touches a socket, a file or an event loop: it turns bytes
into values and values into bytes. The public submodules are ``framing``,
``messages``, ``handshake``, ``connection``, ``commands``, ``errors``, ``values``,
and ``records``, the on-disk codecs: ``records.tagged`` (lossless JSON text for
values), ``records.aof`` (the append-only file) and ``records.snapshot`` (the
snapshot file). The names used most are re-exported here.
"""

from ._version import __version__ as __version__
from .commands import COMMANDS as COMMANDS
from .commands import ArgKind as ArgKind
from .commands import CommandSpec as CommandSpec
from .commands import Flag as Flag
from .commands import lookup as lookup
from .commands import resolve as resolve
from .connection import ClientConnection as ClientConnection
from .connection import ServerConnection as ServerConnection
from .connection import Session as Session
from .connection import State as State
from .errors import EXCEPTION_CLASSES as EXCEPTION_CLASSES
from .errors import ErrorCode as ErrorCode
from .errors import KvError as KvError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import ServerError as ServerError
from .framing import FrameDecoder as FrameDecoder
from .framing import encode_frame as encode_frame
from .handshake import HANDSHAKE_UUID as HANDSHAKE_UUID
from .handshake import Credentials as Credentials
from .messages import Push as Push
from .records.aof import AofFormatError as AofFormatError
from .records.aof import AofReader as AofReader
from .records.aof import AofRecord as AofRecord
from .records.aof import encode_record as encode_record
from .records.snapshot import SnapshotEntry as SnapshotEntry
from .records.snapshot import SnapshotFormatError as SnapshotFormatError
from .records.snapshot import SnapshotReader as SnapshotReader
from .records.snapshot import SnapshotWriter as SnapshotWriter

__all__ = [
    "AofFormatError",
    "AofReader",
    "AofRecord",
    "ArgKind",
    "COMMANDS",
    "ClientConnection",
    "CommandSpec",
    "Credentials",
    "EXCEPTION_CLASSES",
    "ErrorCode",
    "Flag",
    "FrameDecoder",
    "HANDSHAKE_UUID",
    "KvError",
    "LocalProtocolError",
    "ProtocolError",
    "Push",
    "RemoteProtocolError",
    "ServerConnection",
    "ServerError",
    "Session",
    "SnapshotEntry",
    "SnapshotFormatError",
    "SnapshotReader",
    "SnapshotWriter",
    "State",
    "__version__",
    "encode_frame",
    "encode_record",
    "lookup",
    "resolve",
]
